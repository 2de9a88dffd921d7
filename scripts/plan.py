"""Snakemake adapter: write the compute plan of the suite."""

from workflow.logs import log_to
from workflow.plan import write_plan

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    summary = write_plan(sm.params.config, sm.output[0])
    log.info("plan: %s", summary)
