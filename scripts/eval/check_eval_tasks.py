"""Snakemake adapter: check the names of lm-eval's built-in tasks (offline) before training."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.eval.builtin_tasks import check_task_names

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    check_task_names(sm.params.tasks)
    log.info("lm-eval knows %s", sm.params.tasks)
    write_json(sm.output[0], {"tasks": list(sm.params.tasks)})
