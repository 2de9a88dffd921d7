# The compute plan: every job of the suite with its GPUs, nodes, FLOPs, GPU-hours and storage
# (workflow/plan/estimate.py, over the job list of workflow/plan/jobs.py that the rules are
# declared over), and a per-size summary against the paper's GPU-hours.


rule plan:
    output:
        jobs=report(
            run_path("plan", "jobs.csv"),
            caption="../report/plan_jobs.rst",
            category="Compute plan",
        ),
        summary=report(
            run_path("plan", "summary.csv"),
            caption="../report/plan_summary.rst",
            category="Compute plan",
        ),
    log:
        run_path("logs", "plan.log"),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/plan/plan.py"
