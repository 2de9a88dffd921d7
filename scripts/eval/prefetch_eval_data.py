"""Snakemake adapter: download the data of lm-eval's built-in tasks into the datasets cache."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.eval.builtin_tasks import prefetch_tasks

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    info = prefetch_tasks(sm.params.tasks)
    log.info("prefetched: %s", info)
    write_json(sm.output[0], info)
