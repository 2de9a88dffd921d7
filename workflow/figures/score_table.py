"""A score table in the paper's layout (rule score_table): Tables 7-14, one row per model size,
one column per task, as CSV and as Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from workflow.core.sizes import size_order
from workflow.core.tables import markdown_table


def score_table(
    df: pd.DataFrame,
    *,
    step: int,
    shots: int,
    variant: str,
    sizes_order: Sequence[str] | None = None,
    metric: str = "acc",
) -> pd.DataFrame:
    """The paper's Tables 7-14 layout: one row per model size, one column per task with
    `metric` (and `<task>_stderr`) at `step` and `shots`, for one data variant."""
    sub = df[
        (df["step"] == step)
        & (df["shots"] == shots)
        & (df["variant"] == variant)
        & (df["metric"] == metric)
    ]
    if sub.empty:
        raise ValueError(f"no {metric} results for {variant} at step {step}, {shots}-shot")
    tasks = sorted(sub["task"].unique())
    rows = []
    for size in size_order(sub["size"], sizes_order):
        row: dict[str, Any] = {"size": size}
        for task in tasks:
            hit = sub[(sub["size"] == size) & (sub["task"] == task)]
            row[task] = hit["value"].iloc[0] if len(hit) else None
            row[f"{task}_stderr"] = hit["stderr"].iloc[0] if len(hit) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cell(value, stderr) -> str:
    """`value ± stderr` as the paper prints them; a dash where there is no result."""
    if _missing(value):
        return "–"
    if _missing(stderr):
        return f"{value:.4f}"
    return f"{value:.4f} ± {stderr:.4f}"


def render_markdown(table: pd.DataFrame, title: str) -> str:
    """A score table as Markdown, each cell `value ± stderr` (as the paper prints them)."""
    tasks = [c for c in table.columns if c != "size" and not c.endswith("_stderr")]
    rows = [
        (row["size"], [_cell(row[t], row[f"{t}_stderr"]) for t in tasks])
        for _, row in table.iterrows()
    ]
    return markdown_table(title, tasks, rows)
