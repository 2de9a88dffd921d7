# Data stages: corpus -> tokenizer -> tokenized shards, merged -> dedup -> pre-shuffled samples.
# No job concatenates the corpus: each shard (a raw file, or a byte range of the generated
# corpus) is read by its own tokenize and dedup_signatures jobs; dedup is signatures -> bucket
# jobs (LSH bands) -> one cluster job. Shards, band groups and resources: JOBS.data.

if config["data"]["source"] == "generated":

    rule corpus:
        output:
            train=run_path("data", "corpus", "train.jsonl"),
            heldout=run_path("data", "corpus", "heldout.jsonl"),
            stats=run_path("data", "corpus", "stats.json"),
        log:
            run_path("logs", "data", "corpus.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("corpus"),
        params:
            generator=config["data"]["generator"],
        script:
            "../scripts/data/corpus.py"

elif config["data"]["source"] == "pile_jsonl":

    PILE_URLS = config["data"]["pile"]["urls"]
    PILE_SHARDS = JOBS.data.raw_names

    rule download:
        output:
            run_path("data", "raw", "{shard}"),
        log:
            run_path("logs", "data", "download", "{shard}.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("download"),
            downloads=1,
        params:
            url=lambda wc: PILE_URLS[PILE_SHARDS.index(wc.shard)],
            sha256=lambda wc: dict(
                zip(PILE_SHARDS, config["data"]["pile"]["sha256"])
            ).get(wc.shard),
        script:
            "../scripts/data/download.py"

    rule heldout:
        input:
            JOBS.data.corpus_files()[-1],
        output:
            heldout=run_path("data", "corpus", "heldout.jsonl"),
            stats=run_path("data", "corpus", "stats.json"),
        log:
            run_path("logs", "data", "heldout.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("heldout"),
        params:
            heldout_documents=config["data"]["pile"]["heldout_documents"],
        script:
            "../scripts/data/heldout.py"


# every source: BPE on the corpus, or GPT-NeoX-20B's fetched
rule tokenizer:
    input:
        corpus=(
            JOBS.data.corpus_files()
            if config["data"]["tokenizer"]["kind"] == "train_bpe"
            else []
        ),
    output:
        run_path("data", "tokenizer", "tokenizer.json"),
    log:
        run_path("logs", "data", "tokenizer.log"),
    conda:
        "../envs/pipeline.yaml"
    resources:
        **JOBS.data.resources("tokenizer"),
    params:
        tokenizer=config["data"]["tokenizer"],
        shards=(
            JOBS.data.tokenize_shards
            if config["data"]["source"] == "pile_jsonl"
            else None
        ),
    script:
        "../scripts/data/tokenizer.py"


if config["data"]["source"] in ("generated", "pile_jsonl"):

    rule tokenize:
        input:
            corpus=lambda wc: JOBS.data.tokenize_shards[int(wc.part)].path,
            tokenizer=run_path("data", "tokenizer", "tokenizer.json"),
        output:
            multiext(JOBS.data.shard_prefix(), ".bin", ".idx", ".json"),
        log:
            run_path("logs", "data", "tokenize", "part{part}.log"),
        conda:
            "../envs/pipeline.yaml"
        threads: config["data"]["workers"]
        resources:
            **JOBS.data.resources("tokenize"),
        params:
            shard=lambda wc: JOBS.data.tokenize_shards[int(wc.part)],
            append_eod=config["data"]["append_eod"],
        script:
            "../scripts/data/tokenize.py"

    rule tokenize_merge:
        input:
            expand(
                JOBS.data.shard_prefix() + ".{ext}",
                part=range(len(JOBS.data.tokenize_shards)),
                ext=["bin", "idx", "json"],
            ),
        output:
            multiext(run_path("data", "standard", "documents"), ".bin", ".idx"),
            stats=run_path("data", "standard", "documents.json"),
        log:
            run_path("logs", "data", "tokenize_merge.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("tokenize_merge"),
        params:
            prefixes=[
                JOBS.data.shard_prefix(k)
                for k in range(len(JOBS.data.tokenize_shards))
            ],
        script:
            "../scripts/data/tokenize_merge.py"

    rule dedup_signatures:
        input:
            corpus=lambda wc: JOBS.data.signature_shards[int(wc.part)].path,
        output:
            signatures=JOBS.data.signatures(),
            bands=run_path("data", "dedup", "signatures", "part{part}.bands.npy"),
            meta=run_path("data", "dedup", "signatures", "part{part}.json"),
        log:
            run_path("logs", "data", "dedup_signatures", "part{part}.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("dedup_signatures"),
        params:
            shard=lambda wc: JOBS.data.signature_shards[int(wc.part)],
            dedup=config["data"]["dedup"],
        script:
            "../scripts/data/dedup_signatures.py"

    DEDUP_SIGNATURES = [
        path
        for k in range(len(JOBS.data.signature_shards))
        for path in (
            JOBS.data.signatures(k),
            run_path("data", "dedup", "signatures", f"part{k}.bands.npy"),
            run_path("data", "dedup", "signatures", f"part{k}.json"),
        )
    ]

    rule dedup_buckets:
        input:
            DEDUP_SIGNATURES,
        output:
            pairs=JOBS.data.bucket_pairs(),
            meta=run_path("data", "dedup", "buckets", "group{group}.json"),
        log:
            run_path("logs", "data", "dedup_buckets", "group{group}.log"),
        wildcard_constraints:
            group=r"\d+",
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("dedup_buckets"),
        params:
            signatures=DEDUP_SIGNATURES[::3],
            bands_per_job=config["data"]["dedup"]["bands_per_job"],
        script:
            "../scripts/data/dedup_buckets.py"

    rule dedup_clusters:
        input:
            signatures=DEDUP_SIGNATURES,
            pairs=[
                path
                for g in range(len(JOBS.data.band_groups))
                for path in (
                    JOBS.data.bucket_pairs(g),
                    run_path("data", "dedup", "buckets", f"group{g}.json"),
                )
            ],
        output:
            kept=run_path("data", "dedup", "kept_ids.npy"),
            dropped=run_path("data", "dedup", "dropped_ids.npy"),
            clusters=run_path("data", "dedup", "clusters.jsonl"),
            stats=run_path("data", "dedup", "dedup_stats.json"),
        log:
            run_path("logs", "data", "dedup_clusters.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("dedup_clusters"),
        params:
            signatures=DEDUP_SIGNATURES[::3],
            pairs=[JOBS.data.bucket_pairs(g) for g in range(len(JOBS.data.band_groups))],
        script:
            "../scripts/data/dedup_clusters.py"

    rule deduped_documents:
        input:
            documents=multiext(
                run_path("data", "standard", "documents"), ".bin", ".idx"
            ),
            kept=run_path("data", "dedup", "kept_ids.npy"),
            dedup_stats=run_path("data", "dedup", "dedup_stats.json"),
        output:
            multiext(run_path("data", "deduped", "documents"), ".bin", ".idx"),
            stats=run_path("data", "deduped", "documents.json"),
            report=run_path("data", "dedup", "token_reduction.json"),
        log:
            run_path("logs", "data", "deduped_documents.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **JOBS.data.resources("deduped_documents"),
        script:
            "../scripts/data/deduped_documents.py"

else:

    RELEASE = release_for(config["data"])

    rule download_release:
        output:
            run_path("data", "{variant}", "release", "{file}"),
        log:
            run_path("logs", "data", "release", "{variant}", "{file}.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            downloads=1,
        params:
            release=RELEASE,
        script:
            "../scripts/data/download_release.py"

    rule merge_release:
        input:
            shards=expand(
                run_path("data", "{{variant}}", "release", "{file}"),
                file=RELEASE.shard_names(),
            ),
            idx=run_path("data", "{variant}", "release", RELEASE.idx_name),
        output:
            multiext(
                run_path(
                    "data",
                    "{variant}",
                    "samples" if RELEASE.kind == "samples" else "documents",
                ),
                ".bin",
                ".idx",
                ".json",
            ),
        log:
            run_path("logs", "data", "merge_release_{variant}.log"),
        conda:
            "../envs/pipeline.yaml"
        params:
            release=RELEASE,
            seq_length=SUITE.training.seq_length,
            global_batch_size=SUITE.training.global_batch_size,
            num_samples=SUITE.training.num_samples(config["data"]["sample_margin"]),
        script:
            "../scripts/data/merge_release.py"


if config["data"]["source"] != "pythia_preshuffled":

    rule pack_shuffle:
        input:
            multiext(run_path("data", "{variant}", "documents"), ".bin", ".idx"),
        output:
            samples_files(),
            index_maps=directory(run_path("data", "{variant}", "index_maps")),
        log:
            run_path("logs", "data", "pack_shuffle_{variant}.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            **(
                JOBS.data.pack_resources(
                    SUITE.training.num_samples(config["data"]["sample_margin"])
                )
                if config["data"]["source"] in ("generated", "pile_jsonl")
                else {}
            ),
        params:
            seq_length=SUITE.training.seq_length,
            num_samples=SUITE.training.num_samples(config["data"]["sample_margin"]),
            global_batch_size=SUITE.training.global_batch_size,
            seed=SUITE.training.seed,
        script:
            "../scripts/data/pack_shuffle.py"
