"""Snakemake adapter: the LAMBADA-style last-word cloze task from held-out documents."""

from workflow.core.logs import log_to
from workflow.core.tasks import CLOZE_TASK
from workflow.eval.cloze_task import build_cloze_task, write_task_yaml

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    stats = build_cloze_task(
        sm.input.heldout,
        sm.output.data,
        num_documents=sm.params.num_documents,
        seed=sm.params.seed,
        max_words=sm.params.max_words,
    )
    write_task_yaml(CLOZE_TASK, sm.output.data, sm.output.task)
    log.info("cloze task: %s", stats)
