# lm-evaluation-harness on the scheduled checkpoints, and the long table of every result.


rule cloze_task:
    input:
        heldout=run_path("data", "corpus", "heldout.jsonl"),
    output:
        data=run_path("evals", "tasks", "lambada_cloze.jsonl"),
        task=run_path("evals", "tasks", "lambada_cloze.yaml"),
    params:
        num_documents=config["eval"]["cloze_documents"],
        seed=SUITE.training.seed,
    log:
        run_path("logs", "evals", "cloze_task.log"),
    script:
        "../scripts/cloze_task.py"


rule evaluate:
    input:
        checkpoint=checkpoint_dir("{variant}", "{size}", "{step}"),
        task=run_path("evals", "tasks", "lambada_cloze.yaml"),
    output:
        run_path("evals", "{variant}", "{size}", "step{step}", "{shots}shot.json"),
    params:
        eval=config["eval"],
    log:
        run_path("logs", "evals", "{variant}", "{size}", "step{step}_{shots}shot.log"),
    script:
        "../scripts/evaluate.py"


rule eval_table:
    input:
        eval_targets(),
    output:
        run_path("tables", "evals.csv"),
    log:
        run_path("logs", "tables", "evals.log"),
    script:
        "../scripts/eval_table.py"
