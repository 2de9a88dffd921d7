"""Snakemake adapter: every eval JSON into one long table (CSV and parquet, with stderr)."""

from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.eval.eval_table import collect_evals

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = collect_evals(list(sm.input))
    write_table(table, sm.output.csv)
    write_table(table, sm.output.parquet)
    log.info("%d rows", len(table))
