"""Accuracy per operand beside its frequency, and Table 4 of the paper (rule
term_frequency_table): the gap between the accuracy on the most and the least frequent x1."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from workflow.core.tables import markdown_table
from workflow.studies.term_frequency.config import TermFrequencyError
from workflow.studies.term_frequency.tasks import TASK_NAME

TABLE_COLUMNS = [
    "size", "step", "operation", "shots", "x1", "correct", "documents", "accuracy", "count",
]  # fmt: skip


def frequency_table(evals: Iterable[tuple[str, int, dict]], counts) -> pd.DataFrame:
    """Accuracy per (size, step, operation, shots, x1) beside the count of x1 in the rows that
    step had trained on. `evals`: (size, step, evaluate_arithmetic JSON); `counts`: a frame
    [step, x1, count] (cumulative_counts)."""
    rows = []
    for size, step, result in evals:
        for task, per_x1 in result["per_x1"].items():
            m = TASK_NAME.match(task)
            if m is None:
                raise TermFrequencyError(f"{size} step {step}: {task!r} is not an arithmetic task")
            for x1, (correct, documents) in per_x1.items():
                rows.append(
                    (size, int(step), m["operation"], int(m["shots"]), int(x1), correct, documents)
                )
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS[:-2])
    df["accuracy"] = df["correct"] / df["documents"]
    merged = df.merge(counts[["step", "x1", "count"]], on=["step", "x1"], how="left")
    missing = merged[merged["count"].isna()][["step", "x1"]].drop_duplicates()
    if len(missing):
        raise TermFrequencyError(
            f"no operand count for (step, x1) {missing.head(3).values.tolist()}...: count the "
            "steps that are evaluated"
        )
    merged["count"] = merged["count"].astype("int64")
    return merged[TABLE_COLUMNS].sort_values(TABLE_COLUMNS[:5], ignore_index=True)


def frequency_gap(accuracy: Sequence[float], counts: Sequence[int], fraction: float = 0.1):
    """Table 4's Δ: mean accuracy of the `fraction` most frequent x1 minus that of the
    `fraction` least frequent, x100. Ties in count are broken by position (stable sort)."""
    acc, cnt = np.asarray(accuracy, float), np.asarray(counts)
    if acc.shape != cnt.shape or acc.ndim != 1 or not acc.size:
        raise TermFrequencyError("accuracy and counts must be equal-length, non-empty lists")
    if not 0 < fraction <= 0.5:
        raise TermFrequencyError(f"fraction must be in (0, 0.5], got {fraction}")
    k = max(1, int(round(fraction * len(acc))))
    order = np.argsort(cnt, kind="stable")
    return 100.0 * (acc[order[-k:]].mean() - acc[order[:k]].mean())


def gap_table(table: pd.DataFrame, fraction: float = 0.1) -> pd.DataFrame:
    """Table 4 (long): per (size, operation, shots, step) the gap Δ and the mean accuracy."""
    out = []
    for key, g in table.groupby(["size", "operation", "shots", "step"], sort=False):
        g = g.sort_values("x1")
        gap = frequency_gap(g["accuracy"].to_numpy(), g["count"].to_numpy(), fraction)
        out.append((*key, round(float(gap), 4), round(float(g["accuracy"].mean()), 6)))
    return pd.DataFrame(out, columns=["size", "operation", "shots", "step", "gap", "accuracy"])


def gap_markdown(gap: pd.DataFrame, sizes_order: Sequence[str], fraction: float) -> str:
    """One Markdown table per operation: sizes x (shots, step), cells Δ (x100)."""
    blocks = []
    for operation, part in gap.groupby("operation", sort=True):
        cols = sorted({(int(k), int(s)) for k, s in zip(part["shots"], part["step"], strict=True)})
        cell = {(r.size, r.shots, r.step): r.gap for r in part.itertuples()}
        rows = []
        for size in [s for s in sizes_order if s in set(part["size"])]:
            vals = [cell.get((size, k, s)) for k, s in cols]
            rows.append((size, ["" if v is None else f"{v:.1f}" for v in vals]))
        title = (
            f"{operation}: accuracy of the {fraction:.0%} most frequent x1 minus the "
            f"{fraction:.0%} least frequent (x100)"
        )
        columns = [f"{k}-shot step {s}" for k, s in cols]
        blocks.append(markdown_table(title, columns, rows, align="---:"))
    return "\n".join(blocks)
