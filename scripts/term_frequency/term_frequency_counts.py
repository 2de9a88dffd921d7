"""Snakemake adapter: how often each x1 occurs in the rows every evaluated checkpoint saw."""

import time

import pandas as pd

from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.studies.term_frequency.counts import cumulative_counts

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    lo, hi = sm.params.x1
    steps, x1 = list(sm.params.steps), list(range(lo, hi + 1))
    started = time.perf_counter()
    counts = cumulative_counts(
        sm.input.samples[0].removesuffix(".bin"),
        sm.input.tokenizer,
        steps,
        sm.params.global_batch_size,
        x1,
        protocol=sm.params.protocol,
    )
    seconds = time.perf_counter() - started
    rows = [(s, v, int(counts[i, j])) for i, s in enumerate(steps) for j, v in enumerate(x1)]
    write_table(pd.DataFrame(rows, columns=["step", "x1", "count"]), sm.output[0])
    log.info(
        "counted %d steps x %d x1 (protocol %s) in %.2f s",
        len(steps), len(x1), sm.params.protocol, seconds,
    )  # fmt: skip
