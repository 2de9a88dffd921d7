"""Snakemake adapter: one row per (variant, size, step) of memorization and its Poisson test."""

from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.studies.memorization.table import memorization_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = memorization_table(list(sm.input))
    write_table(table, sm.output[0])
    log.info("%s:\n%s", sm.output[0], table.to_string(index=False))
