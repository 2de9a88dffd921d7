"""Snakemake adapter: write the compute plan of the suite and print its summary."""

from workflow.core.logs import log_to
from workflow.plan.estimate import write_plan

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    summary = write_plan(sm.config, sm.output.jobs, sm.output.summary)
    log.info("%s", summary)
    print(summary, flush=True)
