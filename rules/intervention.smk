# The gender-bias intervention (paper §3.1; Figs 1, 2, 6): continue a model from its checkpoint
# and optimizer state at (1 - f) x T with masculine pronoun tokens swapped to feminine ones, then
# evaluate the baseline and intervention arms over the window on CrowS-Pairs-like, WinoBias-like
# and LAMBADA tasks.

# the runs, their arms, rule names, checkpoints and evaluations: workflow/plan/jobs.py
# (SuiteJobs.interventions, InterventionJobs)
IV = config["intervention"]
GENERATOR = (
    config["data"]["generator"] if config["data"]["source"] == "generated" else None
)


rule bias_tasks:
    # CrowS-Pairs-like pairs and WinoBias-like pro/anti items over the planted occupations
    output:
        expand(
            run_path("evals", "tasks", "{task}.{ext}"),
            task=BIAS_TASKS,
            ext=["jsonl", "yaml"],
        ),
        run_path("evals", "tasks", "bias_metrics.py"),
    log:
        run_path("logs", "evals", "bias_tasks.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        num_items=IV["bias_items"],
        seed=SUITE.training.seed,
        # the occupations and sentence shapes the generated corpus plants (all for others)
        occupations=occupation_subset(GENERATOR["occupations"]) if GENERATOR else None,
        templates=GENERATOR["occupation_templates"] if GENERATOR else None,
    script:
        "../scripts/intervention/bias_tasks.py"


rule swap_map:
    # the pronoun map of this suite's tokenizer (he->she, him->her, his->her, 4 forms each)
    input:
        run_path("data", "tokenizer", "tokenizer.json"),
    output:
        run_path("models", "intervention_swap_map.json"),
    log:
        run_path("logs", "intervention", "swap_map.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        swap=IV["swap"],
    script:
        "../scripts/intervention/swap_map.py"


for _i, _iv in enumerate(JOBS.interventions):
    _run = _iv.run
    for _arm in _iv.arms:

        rule:
            name:
                _iv.arm_rule(_arm)
            input:
                start=checkpoint_dir(_run.variant, _run.size, _run.start),
                samples=samples_files(_run.variant),
                tokenizer=run_path("data", "tokenizer", "tokenizer.json"),
                swap=(
                    run_path("models", "intervention_swap_map.json")
                    if _arm == "intervention"
                    else []
                ),
            output:
                [directory(c) for c in _iv.arm_outputs(_arm)],
            log:
                run_path("logs", "intervention", f"{_iv.tag}_{_arm}.log"),
            conda:
                "../envs/train-gpu.yaml"
            threads: SUITE.training.threads
            resources:
                # the model's own training layout, for the window's steps
                **train_resources(SUITE, SUITE.models[_run.size], _run.start, _run.end),
            params:
                # what the weights depend on: a change reruns the arm and its evaluations
                config_hash=config_hash(
                    SUITE.models[_run.size].for_variant(_run.variant), SUITE.training
                ),
                swap=IV["swap"] if _arm == "intervention" else None,
                run=_i,
                arm=_arm,
                # a function, so "{step}" stays a template for the script
                out_template=lambda wc, t=_iv.arm_checkpoint(_arm, "{step}"): t,
            script:
                "../scripts/intervention/intervene.py"

    rule:
        name:
            _iv.eval_rule
        input:
            checkpoints=[c for c, _ in _iv.evals],
            task=(
                run_path("evals", "tasks", f"{IV['lambada_task']}.yaml")
                if IV["lambada_task"] == CLOZE_TASK
                else []
            ),
            choice_tasks=expand(
                run_path("evals", "tasks", "{task}.yaml"),
                task=JOBS.generated_bias_tasks,
            ),
            prefetched=(
                run_path("evals", "tasks", "prefetch.json")
                if JOBS.remote_tasks
                else []
            ),
        output:
            [e for _, e in _iv.evals],
        log:
            run_path("logs", "evals", "intervention", f"{_iv.tag}.log"),
        conda:
            "../envs/pipeline.yaml"
        threads: config["eval"]["threads"]
        resources:
            **eval_resources(
                SUITE,
                SUITE.models[_run.size],
                [0] * len(_iv.evals),
                JOBS.intervention_tasks,
            ),
        params:
            eval={
                "tasks": JOBS.intervention_tasks,
                "batch_size": IV["batch_size"],
                "limit": None,
            },
            # (checkpoint, shots) of each output: zero-shot
            runs=[[c, 0] for c, _ in _iv.evals],
        script:
            "../scripts/eval/evaluate.py"


rule intervention_table:
    input:
        [e for iv in JOBS.interventions for _, e in iv.evals],
    output:
        report(
            run_path("tables", "intervention.csv"),
            caption="../report/intervention_table.rst",
            category="Gender-bias intervention",
        ),
    log:
        run_path("logs", "tables", "intervention.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        runs=[
            dict(size=r.size, name=r.name, fraction=r.fraction, start=r.start)
            for r in (iv.run for iv in JOBS.interventions)
        ],
        train_iters=SUITE.training.train_iters,
        crows_task=IV["crows_task"],
        winobias_tasks=IV["winobias_tasks"],
        lambada_task=IV["lambada_task"],
    script:
        "../scripts/intervention/intervention_table.py"


rule fig_intervention:
    # Fig 1 (crows_pairs), Fig 2 (winobias), Fig 6 (lambada)
    input:
        run_path("tables", "intervention.csv"),
    output:
        pdf=run_path("figures", "intervention_{fig}.pdf"),
        png=report(
            run_path("figures", "intervention_{fig}.png"),
            caption="../report/intervention_figure.rst",
            category="Gender-bias intervention",
        ),
    log:
        run_path("logs", "figures", "intervention_{fig}.log"),
    wildcard_constraints:
        fig="crows_pairs|winobias|lambada",
    conda:
        "../envs/pipeline.yaml"
    params:
        fig=lambda wc: wc.fig,
    script:
        "../scripts/intervention/fig_intervention.py"
