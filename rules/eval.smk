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
        "../scripts/eval/cloze_task.py"


EMBEDDED_CHOICE_TASKS = [
    t
    for t in config["eval"]["tasks"]
    if t in ("piqa_style", "sciq_style", "winogrande_style")
]
# lm-eval's own tasks (their data is fetched once by prefetch_eval_data), also those of the
# intervention when it has runs
_IV_TASKS = (
    [
        config["intervention"]["crows_task"],
        *config["intervention"]["winobias_tasks"],
        config["intervention"]["lambada_task"],
    ]
    if config["intervention"]["runs"]
    else []
)
REMOTE_TASKS = list(
    dict.fromkeys(
        t
        for t in [*config["eval"]["tasks"], *_IV_TASKS]
        if t != "lambada_cloze"
        and t not in EMBEDDED_CHOICE_TASKS
        and t not in ("crows_pairs_style", "winobias_style_pro", "winobias_style_anti")
    )
)


rule choice_tasks:
    # 2-choice (PIQA-like), 4-choice (SciQ-like) and WinoGrande-like tasks from held-out documents
    input:
        heldout=run_path("data", "corpus", "heldout.jsonl"),
    output:
        expand(
            run_path("evals", "tasks", "{task}.{ext}"),
            task=["piqa_style", "sciq_style", "winogrande_style"],
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
        tasks=REMOTE_TASKS,
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
        tasks=REMOTE_TASKS,
    script:
        "../scripts/eval/check_eval_tasks.py"


# One job evaluates several checkpoints of one model (eval.steps_per_job): the process start,
# imports and task loading are paid once; every checkpoint keeps its own JSON target.
for _size in SIZES:
    _tag = rule_tag(_size)
    for _shots in config["eval"]["num_fewshot"]:
        _steps = SUITE.eval_steps(_shots)
        _n = config["eval"]["steps_per_job"]
        for _chunk in [_steps[i : i + _n] for i in range(0, len(_steps), _n)]:

            rule:
                name:
                    f"evaluate_{_tag}_{_shots}shot_{_chunk[0]}_{_chunk[-1]}"
                input:
                    checkpoints=[checkpoint_dir("{variant}", _size, s) for s in _chunk],
                    task=(
                        run_path("evals", "tasks", "lambada_cloze.yaml")
                        if "lambada_cloze" in config["eval"]["tasks"]
                        else []
                    ),
                    prefetched=(
                        run_path("evals", "tasks", "prefetch.json")
                        if REMOTE_TASKS
                        else []
                    ),
                    choice_tasks=expand(
                        run_path("evals", "tasks", "{task}.yaml"),
                        task=EMBEDDED_CHOICE_TASKS,
                    ),
                output:
                    [
                        run_path(
                            "evals",
                            "{variant}",
                            _size,
                            f"step{s}",
                            f"{_shots}shot.json",
                        )
                        for s in _chunk
                    ],
                log:
                    run_path(
                        "logs",
                        "evals",
                        "{variant}",
                        _size,
                        f"{_shots}shot_steps{_chunk[0]}-{_chunk[-1]}.log",
                    ),
                conda:
                    "../envs/pipeline.yaml"
                threads: config["eval"]["threads"]
                # one GPU when the suite trains on GPUs; time limit from forward FLOPs
                resources:
                    **eval_resources(SUITE, SUITE.models[_size], len(_chunk), _shots),
                params:
                    eval=config["eval"],
                    shots=_shots,
                script:
                    "../scripts/eval/evaluate.py"


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
        "../scripts/eval/eval_table.py"


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
        "../scripts/eval/compare_paper.py"
