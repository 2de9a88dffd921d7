# Data stages: corpus -> tokenizer -> tokenized documents -> dedup -> pre-shuffled samples.

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
        params:
            generator=config["data"]["generator"],
        script:
            "../scripts/data/corpus.py"

elif config["data"]["source"] == "pile_jsonl":

    PILE_URLS = config["data"]["pile"]["urls"]
    PILE_SHARDS = [Path(u).name for u in PILE_URLS]

    rule download:
        output:
            run_path("data", "raw", "{shard}"),
        log:
            run_path("logs", "data", "download", "{shard}.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            downloads=1,
        params:
            url=lambda wc: PILE_URLS[PILE_SHARDS.index(wc.shard)],
            sha256=lambda wc: dict(
                zip(PILE_SHARDS, config["data"]["pile"]["sha256"])
            ).get(wc.shard),
        script:
            "../scripts/data/download.py"

    rule corpus:
        input:
            expand(run_path("data", "raw", "{shard}"), shard=PILE_SHARDS),
        output:
            train=run_path("data", "corpus", "train.jsonl"),
            heldout=run_path("data", "corpus", "heldout.jsonl"),
            stats=run_path("data", "corpus", "stats.json"),
        log:
            run_path("logs", "data", "corpus.log"),
        conda:
            "../envs/pipeline.yaml"
        params:
            heldout_documents=config["data"]["pile"]["heldout_documents"],
        script:
            "../scripts/data/corpus_from_shards.py"


rule tokenizer:
    input:
        corpus=(
            run_path("data", "corpus", "train.jsonl")
            if config["data"]["tokenizer"]["kind"] == "train_bpe"
            else []
        ),
    output:
        run_path("data", "tokenizer", "tokenizer.json"),
    log:
        run_path("logs", "data", "tokenizer.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        tokenizer=config["data"]["tokenizer"],
    script:
        "../scripts/data/tokenizer.py"


if config["data"]["source"] in ("generated", "pile_jsonl"):

    rule tokenize:
        input:
            corpus=run_path("data", "corpus", "train.jsonl"),
            tokenizer=run_path("data", "tokenizer", "tokenizer.json"),
        output:
            multiext(run_path("data", "standard", "documents"), ".bin", ".idx"),
            stats=run_path("data", "standard", "documents.json"),
        log:
            run_path("logs", "data", "tokenize.log"),
        conda:
            "../envs/pipeline.yaml"
        threads: config["data"]["workers"]
        params:
            append_eod=config["data"]["append_eod"],
        script:
            "../scripts/data/tokenize.py"

    rule dedup_signatures:
        input:
            corpus=run_path("data", "corpus", "train.jsonl"),
        output:
            signatures=run_path("data", "dedup", "signatures", "part{part}.npy"),
            meta=run_path("data", "dedup", "signatures", "part{part}.json"),
        log:
            run_path("logs", "data", "dedup_signatures", "part{part}.log"),
        conda:
            "../envs/pipeline.yaml"
        params:
            dedup=config["data"]["dedup"],
        script:
            "../scripts/data/dedup_signatures.py"

    rule dedup:
        input:
            signatures=expand(
                run_path("data", "dedup", "signatures", "part{part}.npy"),
                part=range(config["data"]["dedup"]["shards"]),
            ),
        output:
            kept=run_path("data", "dedup", "kept_ids.npy"),
            dropped=run_path("data", "dedup", "dropped_ids.npy"),
            clusters=run_path("data", "dedup", "clusters.jsonl"),
            stats=run_path("data", "dedup", "dedup_stats.json"),
        log:
            run_path("logs", "data", "dedup.log"),
        conda:
            "../envs/pipeline.yaml"
        params:
            dedup=config["data"]["dedup"],
        script:
            "../scripts/data/dedup.py"

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
        params:
            seq_length=SUITE.training.seq_length,
            num_samples=SUITE.training.num_samples(config["data"]["sample_margin"]),
            global_batch_size=SUITE.training.global_batch_size,
            seed=SUITE.training.seed,
        script:
            "../scripts/data/pack_shuffle.py"
