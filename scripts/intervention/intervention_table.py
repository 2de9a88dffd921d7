"""Snakemake adapter: both arms of every intervention run in one long table."""

from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.studies.intervention.table import intervention_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    p = sm.params
    table = intervention_table(
        list(sm.input), p.runs, train_iters=p.train_iters, winobias_tasks=p.winobias_tasks
    )
    write_table(table, sm.output[0])
    log.info("%d rows", len(table))
