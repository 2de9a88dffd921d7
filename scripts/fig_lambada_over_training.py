"""Snakemake adapter: Fig. 10 analogue, LAMBADA over training for every model."""

import pandas as pd

from workflow.figures import epoch_boundaries, plot_over_training
from workflow.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = pd.read_csv(sm.input.table)
    # the step at which each variant's data begins its second epoch (if training gets there)
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
    log.info("epoch boundaries (steps): %s", boundaries)
