"""Our results beside the published ones (rule compare_paper): the paper's zero-shot table at
step 143000, `config/pythia.yaml` eval.reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

COLUMNS = ["variant", "size", "task", "metric", "ours", "stderr", "paper", "diff", "z"]


def compare_with_reference(df: pd.DataFrame, reference: Mapping[str, Any]) -> pd.DataFrame:
    """Our results (the eval table `df`) at the reference's step and shots beside the
    published values.

    One row per (variant, size, task, metric) the reference lists: ours, our stderr, the paper's
    value, the difference and z = difference / stderr. Models or metrics we did not evaluate get
    an empty `ours` (and are listed, so a missing evaluation is visible)."""
    step, shots = int(reference["step"]), int(reference.get("shots", 0))
    mine = df[(df["step"] == step) & (df["shots"] == shots)]
    index = {(r.variant, r.size, r.task, r.metric): (r.value, r.stderr) for r in mine.itertuples()}
    rows = []
    for variant, sizes in reference["values"].items():
        for size, tasks in sizes.items():
            for task, metrics in tasks.items():
                for metric, paper in metrics.items():
                    ours, stderr = index.get((variant, str(size), task, metric), (None, None))
                    diff = None if ours is None else ours - paper
                    z = diff / stderr if diff is not None and stderr else None
                    rows.append((variant, str(size), task, metric, ours, stderr, paper, diff, z))
    return pd.DataFrame(rows, columns=COLUMNS).astype(
        {c: "float64" for c in ("ours", "stderr", "paper", "diff", "z")}
    )
