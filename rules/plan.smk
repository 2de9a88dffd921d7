# The compute plan: every job of the suite with its GPUs and estimated GPU-hours.


rule plan:
    output:
        run_path("plan", "jobs.csv"),
    params:
        config=config,
    log:
        run_path("logs", "plan.log"),
    script:
        "../scripts/plan.py"
