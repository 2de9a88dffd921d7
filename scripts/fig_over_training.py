"""Snakemake adapter: one task's accuracy over training for every model (Figs 10-15)."""

import pandas as pd

from workflow.figures import plot_over_training
from workflow.io import read_json
from workflow.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    table = pd.read_csv(sm.input.table)
    boundaries = dict(sm.params.epoch_boundaries)  # config (published checkpoints)
    for variant, path in zip(sm.params.variants, sm.input.samples or [], strict=False):
        boundaries[variant] = read_json(path)["samples_per_epoch"] / sm.params.global_batch_size
    plot_over_training(
        table,
        sm.output.pdf,
        sm.output.png,
        task=sm.wildcards.task,
        sizes_order=sm.params.sizes,
        epoch_boundaries=boundaries,
    )
    log.info("%s: epoch boundaries %s", sm.wildcards.task, boundaries)
