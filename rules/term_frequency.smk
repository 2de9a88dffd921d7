# Term frequency (paper §3.3, Fig. 7, Table 4): arithmetic accuracy per operand x1 against how
# often x1 occurs in the rows each checkpoint had trained on.

from workflow.studies.term_frequency.config import TermFrequencyError, check_config

TF = config["term_frequency"]
if TF["steps"]:
    try:
        check_config(TF, schedule=SUITE.training.schedule, variants=VARIANTS)
    except TermFrequencyError as e:
        raise WorkflowError(str(e)) from None
TF_FIGURE_SHOTS = (
    TF["figure_shots"] if TF["figure_shots"] is not None else max(TF["shots"])
)
# the tasks, eval jobs and final targets: workflow/plan/jobs.py (SuiteJobs.term_frequency*)


rule term_frequency_tasks:
    output:
        expand(
            run_path("term_frequency", "tasks", "{task}.{ext}"),
            task=JOBS.term_frequency_tasks,
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
for _job in JOBS.term_frequency:

    rule:
        name:
            _job.rule
        input:
            checkpoints=_job.checkpoints(),
            tasks=expand(
                run_path("term_frequency", "tasks", "{task}.yaml"),
                task=JOBS.term_frequency_tasks,
            ),
        output:
            _job.outputs(),
        log:
            run_path(
                "logs",
                "term_frequency",
                _job.size,
                f"eval_steps{_job.steps[0]}-{_job.steps[-1]}.log",
            ),
        conda:
            "../envs/pipeline.yaml"
        threads: config["eval"]["threads"]
        # one GPU when the suite trains on GPUs, like the eval jobs; 2 x 5000 prompts of
        # 0-16 shots weigh about what the zero-shot tasks do
        resources:
            **eval_resources(SUITE, SUITE.models[_job.size], [0] * len(_job.steps)),
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
        protocol=TF["protocol"],
    script:
        "../scripts/term_frequency/term_frequency_counts.py"


rule term_frequency_table:
    input:
        evals=JOBS.term_frequency_results(),
        counts=run_path("term_frequency", f"counts_{TF['variant']}.csv"),
    output:
        table=report(
            run_path("tables", "term_frequency.csv"),
            caption="../report/term_frequency_table.rst",
            category="Term frequency",
        ),
        gap_csv=report(
            run_path("tables", "term_frequency_gap.csv"),
            caption="../report/term_frequency_gap.rst",
            category="Term frequency",
        ),
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
        png=report(
            run_path("figures", "term_frequency_{operation}.png"),
            caption="../report/term_frequency.rst",
            category="Term frequency",
            subcategory="{operation}",
        ),
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
        protocol=TF["protocol"],
    script:
        "../scripts/term_frequency/fig_term_frequency.py"
