# Memorization (paper §3.2, Fig. 3): score every sample a checkpoint has seen, in shards
# (scatter), join them per checkpoint with the Poisson analysis (gather), one table, Fig. 3.

# the section resolved against the suite, its shards and final targets: workflow/plan/jobs.py
MEM = config["memorization"]
MEM_PLAN = JOBS.memorization
# the planted repeated passages are known only for the generated corpus
MEM_PLANTED = config["data"]["source"] == "generated"


rule memorization_scores:
    # one shard of a checkpoint's seen samples: batched greedy decoding with a KV cache
    input:
        checkpoint=lambda wc: checkpoint_dir(
            wc.variant,
            wc.size,
            MEM_PLAN.scheduled(wc.step, f"{wc.variant}/{wc.size}"),
        ),
        samples=samples_files(),
    output:
        run_path(
            "memorization", "{variant}", "{size}", "step{step}", "part{part}.parquet"
        ),
    log:
        run_path(
            "logs", "memorization", "{variant}", "{size}", "step{step}_part{part}.log"
        ),
    conda:
        "../envs/pipeline.yaml"
    threads: MEM["threads"]
    # one GPU per job when the suite trains on GPUs; time limit from the shard's forward FLOPs
    resources:
        runtime=lambda wc: memorization_resources(wc)["runtime"],
        mem_mb=lambda wc: memorization_resources(wc)["mem_mb"],
        gpu=lambda wc: memorization_resources(wc).get("gpu", 0),
        tasks_per_gpu=0,
        cpus_per_task=lambda wc: memorization_resources(wc).get(
            "cpus_per_task", MEM["threads"]
        ),
    params:
        spec=lambda wc: MEM_PLAN.spec(wc.step, wc.size),
        schedule=list(SUITE.training.schedule),
        memorization=MEM,
    script:
        "../scripts/memorization/memorization_scores.py"


rule memorization_gather:
    # the shards of one checkpoint as one table (sample index, score) and its Poisson analysis
    input:
        parts=lambda wc: expand(
            run_path(
                "memorization",
                wc.variant,
                wc.size,
                f"step{wc.step}",
                "part{part}.parquet",
            ),
            part=range(MEM_PLAN.spec(wc.step, wc.size).num_jobs),
        ),
        samples=samples_files(),
        stats=run_path("data", "corpus", "stats.json") if MEM_PLANTED else [],
        tokenizer=(
            run_path("data", "tokenizer", "tokenizer.json") if MEM_PLANTED else []
        ),
    output:
        scores=run_path("memorization", "{variant}", "{size}", "step{step}.parquet"),
        analysis=run_path("memorization", "{variant}", "{size}", "step{step}.json"),
    log:
        run_path("logs", "memorization", "{variant}", "{size}", "step{step}_gather.log"),
    conda:
        "../envs/pipeline.yaml"
    resources:
        # the checkpoint's (index, score) table, twice while it is joined
        mem_mb=lambda wc: 2000 + MEM_PLAN.spec(wc.step).num_samples * 48 // 10**6,
    params:
        memorization=MEM,
    script:
        "../scripts/memorization/memorization_gather.py"


rule memorization_table:
    input:
        JOBS.memorization_results(),
    output:
        report(
            run_path("tables", "memorization.csv"),
            caption="../report/memorization_table.rst",
            category="Memorization",
        ),
    log:
        run_path("logs", "tables", "memorization.log"),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/memorization/memorization_table.py"


rule fig_memorization_qq:
    # Fig. 3: Q-Q plot of memorized samples per block against Poisson, standard over deduped
    input:
        expand(
            run_path("memorization", "{variant}", "{{size}}", "step{{step}}.json"),
            variant=MEM_PLAN.variants,
        ),
    output:
        pdf=report(
            run_path("figures", "memorization_qq_{size}_step{step}.pdf"),
            caption="../report/memorization_qq.rst",
            category="Memorization",
        ),
        png=run_path("figures", "memorization_qq_{size}_step{step}.png"),
    log:
        run_path("logs", "figures", "memorization_qq_{size}_step{step}.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        variants=list(MEM_PLAN.variants),
    script:
        "../scripts/memorization/fig_memorization.py"
