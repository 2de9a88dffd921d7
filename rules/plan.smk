# The compute plan: every job of the suite with its GPUs and estimated GPU-hours.


rule plan:
    output:
        run_path("plan", "jobs.csv"),
    log:
        run_path("logs", "plan.log"),
    conda:
        "../envs/pipeline.yaml"
    params:
        config=config,
    script:
        "../scripts/plan.py"
