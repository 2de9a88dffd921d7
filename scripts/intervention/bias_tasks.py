"""Snakemake adapter: CrowS-Pairs-like and WinoBias-like tasks over the planted occupations."""

from pathlib import Path

from workflow.core.logs import log_to
from workflow.studies.intervention.bias_tasks import build_bias_tasks

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    counts = build_bias_tasks(
        Path(sm.output[0]).parent,
        items=sm.params.num_items,
        seed=sm.params.seed,
        occupations=sm.params.occupations,
        templates=sm.params.templates,
    )
    log.info("items per task: %s", counts)
