# Term frequency (paper §3.3, Fig. 7, Table 4): arithmetic accuracy per operand x1 against how
# often x1 occurs in the rows each checkpoint had trained on.

from workflow.studies.term_frequency.study import (
    TermFrequencyError,
    check_config,
    task_name,
)

TF = config["term_frequency"]
TF_ON = bool(TF["steps"]) and TF["variant"] in VARIANTS
if TF["steps"]:
    try:
        check_config(TF, schedule=SUITE.training.schedule, variants=VARIANTS)
    except TermFrequencyError as e:
        raise WorkflowError(str(e)) from None
TF_TASKS = [task_name(op, k) for op in TF["operations"] for k in TF["shots"]]
TF_FIGURE_SHOTS = (
    TF["figure_shots"] if TF["figure_shots"] is not None else max(TF["shots"])
)


# the study's final outputs (rules/common.smk's get_final_output) and its eval results
TERM_FREQUENCY_TARGETS = (
    [
        run_path("tables", "term_frequency.csv"),
        *expand(run_path("tables", "term_frequency_gap.{ext}"), ext=["csv", "md"]),
        *expand(
            run_path("figures", "term_frequency_{operation}.{ext}"),
            operation=TF["operations"],
            ext=["pdf", "png"],
        ),
    ]
    if TF_ON
    else []
)
TF_EVALS = expand(
    run_path("term_frequency", "evals", TF["variant"], "{size}", "step{step}.json"),
    size=SIZES,
    step=TF["steps"],
)


rule term_frequency_tasks:
    output:
        expand(
            run_path("term_frequency", "tasks", "{task}.{ext}"),
            task=TF_TASKS,
            ext=["yaml", "jsonl"],
        ),
    log:
        run_path("logs", "term_frequency", "tasks.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        term_frequency=TF,
        seed=SUITE.training.seed,
    script:
        "../scripts/term_frequency/term_frequency_tasks.py"


# One job evaluates several checkpoints of one model (eval.steps_per_job), as the eval rules.
for _size in SIZES if TF_ON else []:
    _tag = rule_tag(_size)
    _n = config["eval"]["steps_per_job"]
    for _chunk in [TF["steps"][i : i + _n] for i in range(0, len(TF["steps"]), _n)]:

        rule:
            name:
                f"term_frequency_eval_{_tag}_{_chunk[0]}_{_chunk[-1]}"
            input:
                checkpoints=[checkpoint_dir(TF["variant"], _size, s) for s in _chunk],
                tasks=expand(
                    run_path("term_frequency", "tasks", "{task}.yaml"), task=TF_TASKS
                ),
            output:
                [
                    run_path(
                        "term_frequency",
                        "evals",
                        TF["variant"],
                        _size,
                        f"step{s}.json",
                    )
                    for s in _chunk
                ],
            log:
                run_path(
                    "logs",
                    "term_frequency",
                    _size,
                    f"eval_steps{_chunk[0]}-{_chunk[-1]}.log",
                ),
            conda:
                "../envs/pipeline.yaml"
            threads: config["eval"]["threads"]
            # one GPU when the suite trains on GPUs, like the eval jobs; 2 x 5000 prompts of
            # 0-16 shots weigh about what the zero-shot tasks do
            resources:
                **eval_resources(SUITE, SUITE.models[_size], len(_chunk), 0),
            params:
                batch_size=TF["batch_size"],
            script:
                "../scripts/term_frequency/term_frequency_eval.py"


rule term_frequency_counts:
    # the x1 counts of every evaluated step, in one pass over the memory-mapped samples
    input:
        samples=samples_files(TF["variant"]),
        tokenizer=run_path("data", "tokenizer", "tokenizer.json"),
    output:
        run_path("term_frequency", f"counts_{TF['variant']}.csv"),
    log:
        run_path("logs", "term_frequency", "counts.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        steps=TF["steps"],
        x1=TF["x1"],
        global_batch_size=SUITE.training.global_batch_size,
    script:
        "../scripts/term_frequency/term_frequency_counts.py"


rule term_frequency_table:
    input:
        evals=TF_EVALS,
        counts=run_path("term_frequency", f"counts_{TF['variant']}.csv"),
    output:
        table=run_path("tables", "term_frequency.csv"),
        gap_csv=run_path("tables", "term_frequency_gap.csv"),
        gap_md=run_path("tables", "term_frequency_gap.md"),
    log:
        run_path("logs", "tables", "term_frequency.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        term_frequency={**TF, "table_shots": TF["table_shots"] or TF["shots"]},
        sizes=SIZES,
    script:
        "../scripts/term_frequency/term_frequency_table.py"


rule fig_term_frequency:
    # Fig. 7 (addition) and its multiplication twin
    input:
        run_path("tables", "term_frequency.csv"),
    output:
        pdf=run_path("figures", "term_frequency_{operation}.pdf"),
        png=run_path("figures", "term_frequency_{operation}.png"),
    log:
        run_path("logs", "figures", "term_frequency_{operation}.log"),
    wildcard_constraints:
        operation="plus|times",
    conda:
        "../envs/pipeline.yaml"
    params:
        shots=TF_FIGURE_SHOTS,
        sizes=SIZES,
        bins=TF["bins"],
    script:
        "../scripts/term_frequency/fig_term_frequency.py"
