"""Snakemake adapter: accuracy per x1 beside its frequency (table) and Table 4 (the gap)."""

import re

import pandas as pd

from workflow.core.io import read_checked_json, write_text
from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.studies.term_frequency.table import frequency_table, gap_markdown, gap_table

STEP = re.compile(r"/(?P<size>[^/]+)/step(?P<step>\d+)\.json$")

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    evals = []
    for path in sm.input.evals:
        m = STEP.search(str(path))
        evals.append((m["size"], int(m["step"]), read_checked_json(path)))
    table = frequency_table(evals, pd.read_csv(sm.input.counts))
    write_table(table, sm.output.table)
    tf = sm.params.term_frequency
    gap = gap_table(table[table["shots"].isin(tf["table_shots"])], tf["gap_fraction"])
    write_table(gap, sm.output.gap_csv)
    write_text(sm.output.gap_md, gap_markdown(gap, sm.params.sizes, tf["gap_fraction"]))
    log.info("%d rows; gaps:\n%s", len(table), gap.to_string())
