"""Python's cyclic garbage collector in a job's own process.

Snakemake runs each job's script in a fresh Python that loads torch, transformers, DeepSpeed or
lm-eval (~700,000 objects the collector tracks), does its work and exits. With the default
settings the collector walks that whole heap about seven times while the libraries import and
once more at the exit (CPython collects while it tears the modules down): ~1-2 s of a job that
often computes for less (70m training, 12b evaluation: measured in #18's notes). The collector
stays on for the work itself: a reference cycle made while training or evaluating is freed as
always, so a long GPU job does not grow.
"""

from __future__ import annotations

import atexit
import gc

# Young-generation threshold: a collection per 10,000 new container objects instead of 700.
# Fewer young collections promote fewer survivors, so the full collections that walk the
# libraries' heap while they load stop happening; memory held by short-lived cycles grows by at
# most ~10,000 small objects between collections.
YOUNG_THRESHOLD = 10_000


def short_lived_process() -> None:
    """Tune the collector for a job's process: call it first in the job's script.

    Collections during imports become rare (`YOUNG_THRESHOLD`) and at the interpreter's exit
    the heap is frozen (`gc.freeze`, registered with `atexit` first so that it runs after every
    later exit handler): the exit then frees what reference counting frees and skips walking
    the rest, which the operating system reclaims with the process. Outputs are written and
    closed by the script before that.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    atexit.register(gc.freeze)
