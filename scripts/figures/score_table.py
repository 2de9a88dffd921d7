"""Snakemake adapter: a score table in the paper's layout (Tables 7-14), CSV and Markdown."""

import pandas as pd

from workflow.core.io import write_text
from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.figures.score_table import render_markdown, score_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    w = sm.wildcards
    table = score_table(
        pd.read_csv(sm.input[0]),
        step=int(w.step),
        shots=int(w.shots),
        variant=w.variant,
        sizes_order=sm.params.sizes,
    )
    write_table(table, sm.output.csv)
    title = f"{w.shots}-shot accuracy at step {w.step}, {w.variant} models"
    write_text(sm.output.md, render_markdown(table, title))
    log.info("%s: %d models", title, len(table))
