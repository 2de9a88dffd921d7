"""Snakemake adapter: every eval JSON into one long table (CSV and parquet, with stderr)."""

from workflow.core.logs import log_to
from workflow.figures.evals import collect_evals, write_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = collect_evals(list(sm.input))
    write_table(table, sm.output.csv)
    write_table(table, sm.output.parquet)
    log.info("%d rows", len(table))
