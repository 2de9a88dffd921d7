"""Snakemake adapter: download the data of lm-eval's built-in tasks into the datasets cache."""

from workflow.evaluate import prefetch_tasks
from workflow.io import write_json
from workflow.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    info = prefetch_tasks(sm.params.tasks)
    log.info("prefetched: %s", info)
    write_json(sm.output[0], info)
