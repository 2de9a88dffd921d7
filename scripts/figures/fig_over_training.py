"""Snakemake adapter: one task over training for every model (Figs 10-15; Fig 10 is LAMBADA)."""

import pandas as pd

from workflow.core.logs import log_to
from workflow.figures.over_training import epoch_boundaries, plot_over_training

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = pd.read_csv(sm.input.table)
    boundaries = epoch_boundaries(
        sm.params.epoch_boundaries,
        dict(zip(sm.params.variants, sm.input.samples or [], strict=False)),
        sm.params.global_batch_size,
    )
    plot_over_training(
        table,
        sm.output.pdf,
        sm.output.png,
        task=sm.params.task,
        sizes_order=sm.params.sizes,
        epoch_boundaries=boundaries,
    )
    log.info("%s: epoch boundaries %s", sm.params.task, boundaries)
