"""Snakemake adapter: every eval JSON into one long table."""

from workflow.figures import collect_evals
from workflow.io import atomic_path
from workflow.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = collect_evals(list(sm.input))
    with atomic_path(sm.output[0]) as tmp:
        table.to_csv(tmp, index=False)
    log.info("%d rows", len(table))
