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
        "../scripts/fig_lambada_over_training.py"
