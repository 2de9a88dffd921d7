"""Every task against model size at one step (rule fig_scores_by_size): Fig. 9 of the paper."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from workflow.core.plotting import save_figure
from workflow.core.sizes import size_order


def plot_scores_by_size(
    df: pd.DataFrame,
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    step: int,
    variant: str = "deduped",
    shots: int = 0,
    sizes_order: Sequence[str] | None = None,
    title: str | None = None,
):
    """Fig. 9 analogue: accuracy of every task against model size at one step (the last
    checkpoint before the deduped data's second epoch). Returns the saved Figure."""
    from matplotlib.figure import Figure

    sub = df[
        (df["step"] == step)
        & (df["shots"] == shots)
        & (df["variant"] == variant)
        & (df["metric"] == "acc")
    ]
    if sub.empty:
        raise ValueError(f"no acc results for {variant} at step {step}, {shots}-shot")
    sizes = size_order(sub["size"], sizes_order)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for task in sorted(sub["task"].unique()):
        part = sub[sub["task"] == task].set_index("size").reindex(sizes)
        ax.errorbar(
            range(len(sizes)),
            part["value"],
            yerr=part["stderr"],
            marker="o",
            ms=4,
            capsize=2,
            label=task,
        )
    ax.set_xticks(range(len(sizes)), sizes, rotation=30)
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or f"{variant} models at step {step} ({shots}-shot)")
    save_figure(fig, out_pdf, out_png)
    return fig
