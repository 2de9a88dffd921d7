"""Snakemake adapter: the embedded multiple-choice tasks from held-out documents."""

from pathlib import Path

from workflow.core.logs import log_to
from workflow.eval.choice_tasks import build_choice_tasks

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    counts = build_choice_tasks(
        sm.input.heldout,
        Path(sm.output[0]).parent,
        num_documents=sm.params.num_documents,
        seed=sm.params.seed,
    )
    log.info("items per task: %s", counts)
