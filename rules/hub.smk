# Upload every checkpoint as branch step{N} of {org}/pythia-{size}[-deduped] (main = final step).


# One job per training segment (workflow/plan/jobs.py, SuiteJobs.uploads), one receipt per job
# (hub/{variant}/{size}/steps{first}-{last}.json: each branch's commit and file digests).
for _job in JOBS.uploads:

    rule:
        name:
            _job.rule
        input:
            checkpoints=_job.checkpoints(),
        output:
            _job.outputs(),
        log:
            run_path(
                "logs",
                "hub",
                _job.variant,
                _job.size,
                f"steps{_job.first}-{_job.last}.log",
            ),
        # first among the ready jobs: checkpoints leave the cluster's disk as soon as they exist
        priority: 10
        conda:
            "../envs/pipeline.yaml"
        resources:
            hub_uploads=1,
        params:
            hub=config["hub"],
            local_root=run_path("hub", "repos"),
            final_step=SUITE.training.train_iters,
            size=_job.size,
            variant=_job.variant,
            steps=list(_job.steps),
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
