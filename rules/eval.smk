# lm-evaluation-harness on the scheduled checkpoints, and the long table of every result.


rule cloze_task:
    input:
        heldout=run_path("data", "corpus", "heldout.jsonl"),
    output:
        data=run_path("evals", "tasks", f"{CLOZE_TASK}.jsonl"),
        task=run_path("evals", "tasks", f"{CLOZE_TASK}.yaml"),
    log:
        run_path("logs", "evals", "cloze_task.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        num_documents=config["eval"]["cloze_documents"],
        max_words=config["eval"]["cloze_max_words"],
        seed=SUITE.training.seed,
    script:
        "../scripts/eval/cloze_task.py"


rule choice_tasks:
    # 2-choice (PIQA-like), 4-choice (SciQ-like) and WinoGrande-like tasks from held-out documents
    input:
        heldout=run_path("data", "corpus", "heldout.jsonl"),
    output:
        expand(
            run_path("evals", "tasks", "{task}.{ext}"),
            task=CHOICE_TASKS,
            ext=["jsonl", "yaml"],
        ),
    log:
        run_path("logs", "evals", "choice_tasks.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        num_documents=config["eval"]["cloze_documents"],
        seed=SUITE.training.seed,
    script:
        "../scripts/eval/choice_tasks.py"


rule prefetch_eval_data:
    # lm-eval's built-in tasks download their data: once, here (needs network); the eval jobs
    # then run with HF_DATASETS_OFFLINE=1, as compute nodes often have no internet.
    output:
        run_path("evals", "tasks", "prefetch.json"),
    log:
        run_path("logs", "evals", "prefetch.log"),
    conda:
        "../envs/pipeline.yaml"
    resources:
        downloads=1,
    params:
        tasks=JOBS.remote_tasks,
    script:
        "../scripts/eval/prefetch_eval_data.py"


rule check_eval_tasks:
    # lm-eval's task index only (offline, ~12 s): an input of every model's first training
    # job, so an eval task that does not exist is refused before any training
    output:
        run_path("evals", "tasks", "known.json"),
    log:
        run_path("logs", "evals", "check_eval_tasks.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        tasks=JOBS.remote_tasks,
    script:
        "../scripts/eval/check_eval_tasks.py"


# One job evaluates several checkpoints of one model (eval.steps_per_job, within one training
# segment), each with every shot count whose grid holds it: the process start, imports and
# task loading are paid once; every (checkpoint, shots) keeps its own JSON target. A rule per
# variant and chunk, its outputs literal paths. The chunks and their rule names:
# workflow/plan/jobs.py (SuiteJobs.evals), also the plan's.
for _job in JOBS.evals:

    rule:
        name:
            _job.rule
        input:
            checkpoints=_job.checkpoints(),
            task=(
                run_path("evals", "tasks", f"{CLOZE_TASK}.yaml")
                if CLOZE_TASK in config["eval"]["tasks"]
                else []
            ),
            prefetched=(
                run_path("evals", "tasks", "prefetch.json")
                if JOBS.remote_tasks
                else []
            ),
            choice_tasks=expand(
                run_path("evals", "tasks", "{task}.yaml"),
                task=JOBS.embedded_choice_tasks,
            ),
        output:
            _job.outputs(),
        log:
            run_path(
                "logs",
                "evals",
                _job.variant,
                _job.size,
                f"steps{_job.steps[0]}-{_job.steps[-1]}.log",
            ),
        conda:
            "../envs/pipeline.yaml"
        threads: config["eval"]["threads"]
        # one GPU when the suite trains on GPUs; time limit from forward FLOPs
        resources:
            **eval_resources(SUITE, SUITE.models[_job.size], _job.shots),
        params:
            eval=config["eval"],
            # (checkpoint, shots) of each output
            runs=[list(r) for r in _job.checkpoint_runs()],
        script:
            "../scripts/eval/evaluate.py"


rule eval_table:
    input:
        JOBS.eval_results(),
    output:
        csv=report(
            run_path("tables", "evals.csv"),
            caption="../report/evals.rst",
            category="Evaluation over training",
        ),
        parquet=run_path("tables", "evals.parquet"),
    log:
        run_path("logs", "tables", "evals.log"),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/eval/eval_table.py"


rule compare_paper:
    input:
        run_path("tables", "evals.parquet"),
    output:
        report(
            run_path("tables", "compare_paper.csv"),
            caption="../report/compare_paper.rst",
            category="Evaluation by model size",
        ),
    log:
        run_path("logs", "tables", "compare_paper.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        reference=config["eval"]["reference"],
    script:
        "../scripts/eval/compare_paper.py"
