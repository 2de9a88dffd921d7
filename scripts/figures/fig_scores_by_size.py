"""Snakemake adapter: every task against model size at one step (Fig 9)."""

import pandas as pd

from workflow.core.logs import log_to
from workflow.figures.scores_by_size import plot_scores_by_size

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    plot_scores_by_size(
        pd.read_csv(sm.input[0]),
        sm.output.pdf,
        sm.output.png,
        step=int(sm.wildcards.step),
        sizes_order=sm.params.sizes,
    )
