"""Snakemake adapter: the arithmetic tasks of the term-frequency study (lm-eval YAML + jsonl)."""

from pathlib import Path

from workflow.core.logs import log_to
from workflow.studies.term_frequency.tasks import build_arithmetic_tasks

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    tf = sm.params.term_frequency
    counts = build_arithmetic_tasks(
        Path(sm.output[0]).parent,
        operations=tf["operations"],
        x1=tf["x1"],
        x2=tf["x2"],
        shots=tf["shots"],
        max_new_tokens=tf["max_new_tokens"],
        seed=sm.params.seed,
        protocol=tf["protocol"],
    )
    log.info("documents per task: %s", counts)
