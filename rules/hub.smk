# Upload every checkpoint as branch step{N} of {org}/pythia-{size}[-deduped] (main = final step).


rule upload:
    input:
        checkpoint=checkpoint_dir("{variant}", "{size}", "{step}"),
    output:
        run_path("hub", "{variant}", "{size}", "step{step}.json"),
    log:
        run_path("logs", "hub", "{variant}", "{size}", "step{step}.log"),
    # first among the ready jobs: a checkpoint leaves the cluster's disk as soon as it exists, and
    # ~200 waiting uploads would make each scheduling round stat all their inputs (issue 18)
    priority: 10
    conda:
        "../envs/pipeline.yaml"
    resources:
        hub_uploads=1,
    params:
        hub=config["hub"],
        local_root=run_path("hub", "repos"),
        final_step=SUITE.training.train_iters,
    script:
        "../scripts/hub/upload.py"


if config["checkpoints"]["source"] == "published":

    rule fetch_published:
        output:
            directory(checkpoint_dir("{variant}", "{size}", "{step}")),
        log:
            run_path("logs", "published", "{variant}", "{size}", "step{step}.log"),
        conda:
            "../envs/pipeline.yaml"
        resources:
            downloads=1,
        params:
            checkpoints=config["checkpoints"],
            final_step=config["checkpoints"]["final_step"] or SUITE.training.train_iters,
        script:
            "../scripts/hub/fetch_published.py"
