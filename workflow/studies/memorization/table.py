"""The memorization table (rule memorization_table): one row per (variant, size, step) with
its memorization rate and the Poisson test of training order."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from workflow.core.io import read_json

TABLE_COLUMNS = [
    "variant", "size", "step", "samples", "memorized", "memorized_rate", "mean_score",
    "block_size", "blocks", "lambda", "dispersion", "statistic", "df", "p_value",
    "p_overdispersed",
]  # fmt: skip


def memorization_table(paths: Iterable[str | os.PathLike]):
    """One row per analysed checkpoint (`analyse_checkpoint` JSONs), with the planted-vs-rest
    rates when known."""
    rows = []
    for path in paths:
        a = read_json(path)
        row = {c: a.get(c) for c in TABLE_COLUMNS}
        for group, values in (a.get("planted") or {}).items():
            if isinstance(values, dict):
                row[f"{group}_samples"] = values["samples"]
                row[f"{group}_memorized_rate"] = values["memorized_rate"]
                row[f"{group}_mean_score"] = values["mean_score"]
            else:
                row["planted_rate_ratio"] = values
        rows.append(row)
    return pd.DataFrame(rows)
