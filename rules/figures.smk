# One rule per figure of the paper that this suite can produce.


rule fig_lambada_over_training:
    input:
        table=run_path("tables", "evals.csv"),
        # the epoch boundaries come from our data; published checkpoints take them from config
        samples=(
            expand(run_path("data", "{variant}", "samples.json"), variant=VARIANTS)
            if config["checkpoints"]["source"] == "trained"
            else []
        ),
    output:
        pdf=report(
            run_path("figures", "lambada_over_training.pdf"),
            caption="../report/lambada_over_training.rst",
            category="Evaluation over training",
        ),
        png=run_path("figures", "lambada_over_training.png"),
    log:
        run_path("logs", "figures", "lambada_over_training.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        task=config["eval"]["lambada_task"],
        sizes=SIZES,
        variants=VARIANTS,
        global_batch_size=SUITE.training.global_batch_size,
        epoch_boundaries=config["eval"]["epoch_boundaries"],
    script:
        "../scripts/figures/fig_over_training.py"


rule fig_over_training:
    # Figs 10-15: one task over training, standard vs deduped, epoch-2 marker
    input:
        table=run_path("tables", "evals.csv"),
        samples=(
            expand(run_path("data", "{variant}", "samples.json"), variant=VARIANTS)
            if config["checkpoints"]["source"] == "trained"
            else []
        ),
    output:
        pdf=run_path("figures", "over_training", "{task}.pdf"),
        png=report(
            run_path("figures", "over_training", "{task}.png"),
            caption="../report/over_training.rst",
            category="Evaluation over training",
            subcategory="{task}",
        ),
    log:
        run_path("logs", "figures", "over_training_{task}.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        task=lambda wc: wc.task,
        sizes=SIZES,
        variants=VARIANTS,
        global_batch_size=SUITE.training.global_batch_size,
        epoch_boundaries=config["eval"]["epoch_boundaries"],
    script:
        "../scripts/figures/fig_over_training.py"


rule fig_scores_by_size:
    # Fig 9: every task against model size, deduped models, last step before epoch 2
    input:
        run_path("tables", "evals.csv"),
    output:
        pdf=run_path("figures", "scores_by_size_step{step}.pdf"),
        png=report(
            run_path("figures", "scores_by_size_step{step}.png"),
            caption="../report/scores_by_size.rst",
            category="Evaluation by model size",
        ),
    log:
        run_path("logs", "figures", "scores_by_size_step{step}.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        sizes=SIZES,
    script:
        "../scripts/figures/fig_scores_by_size.py"


rule score_table:
    # Tables 7-14: one row per size, one column per task (value and stderr)
    input:
        run_path("tables", "evals.csv"),
    output:
        csv=report(
            run_path("tables", "scores", "{shots}shot_step{step}_{variant}.csv"),
            caption="../report/score_table.rst",
            category="Evaluation by model size",
            subcategory="{shots}-shot tables",
        ),
        md=run_path("tables", "scores", "{shots}shot_step{step}_{variant}.md"),
    log:
        run_path("logs", "tables", "scores_{shots}shot_step{step}_{variant}.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        sizes=SIZES,
    script:
        "../scripts/figures/score_table.py"
