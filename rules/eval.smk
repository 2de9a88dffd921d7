# lm-evaluation-harness on the scheduled checkpoints, and the long table of every result.


rule cloze_task:
    input:
        heldout=run_path("data", "corpus", "heldout.jsonl"),
    output:
        data=run_path("evals", "tasks", "lambada_cloze.jsonl"),
        task=run_path("evals", "tasks", "lambada_cloze.yaml"),
    log:
        run_path("logs", "evals", "cloze_task.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        num_documents=config["eval"]["cloze_documents"],
        max_words=config["eval"]["cloze_max_words"],
        seed=SUITE.training.seed,
    script:
        "../scripts/cloze_task.py"


REMOTE_TASKS = [t for t in config["eval"]["tasks"] if t != "lambada_cloze"]


rule prefetch_eval_data:
    # lm-eval's built-in tasks download their data: once, here (needs network); the eval jobs
    # then run with HF_DATASETS_OFFLINE=1, as compute nodes often have no internet
    output:
        run_path("evals", "tasks", "prefetch.json"),
    log:
        run_path("logs", "evals", "prefetch.log"),
    conda:
        "../envs/pipeline.yaml"
    resources:
        downloads=1,
    params:
        tasks=REMOTE_TASKS,
    script:
        "../scripts/prefetch_eval_data.py"


rule evaluate:
    input:
        checkpoint=checkpoint_dir("{variant}", "{size}", "{step}"),
        task=(
            run_path("evals", "tasks", "lambada_cloze.yaml")
            if "lambada_cloze" in config["eval"]["tasks"]
            else []
        ),
        prefetched=(run_path("evals", "tasks", "prefetch.json") if REMOTE_TASKS else []),
    output:
        run_path("evals", "{variant}", "{size}", "step{step}", "{shots}shot.json"),
    log:
        run_path("logs", "evals", "{variant}", "{size}", "step{step}_{shots}shot.log"),
    conda:
        "../envs/pipeline.yaml"
    threads: config["eval"]["threads"]
    params:
        eval=config["eval"],
    script:
        "../scripts/evaluate.py"


rule eval_table:
    input:
        eval_targets(),
    output:
        csv=run_path("tables", "evals.csv"),
        parquet=run_path("tables", "evals.parquet"),
    log:
        run_path("logs", "tables", "evals.log"),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/eval_table.py"


rule compare_paper:
    input:
        run_path("tables", "evals.parquet"),
    output:
        run_path("tables", "compare_paper.csv"),
    log:
        run_path("logs", "tables", "compare_paper.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        reference=config["eval"]["reference"],
    script:
        "../scripts/compare_paper.py"
