"""Snakemake adapter: Fig. 7, accuracy against binned x1 frequency for one operation."""

import pandas as pd

from workflow.core.logs import log_to
from workflow.studies.term_frequency.figure import plot_frequency_accuracy

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    plot_frequency_accuracy(
        pd.read_csv(sm.input[0]),
        sm.output.pdf,
        sm.output.png,
        operation=sm.wildcards.operation,
        shots=sm.params.shots,
        sizes_order=sm.params.sizes,
        num_bins=sm.params.bins,
        protocol=sm.params.protocol,
    )
