"""One task over training for every model (rules fig_over_training, fig_lambada_over_training):
Figs 10-15 of the Pythia paper, Fig. 10 being LAMBADA.

Standard models left, deduplicated models right, one line per size, with a dashed line where
the deduplicated data starts its second epoch; accuracy on top, perplexity below (for
multiple-choice tasks, which have none, the length-normalised accuracy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from workflow.core.io import read_json
from workflow.core.plotting import finite_rows, ramp_colors, save_figure
from workflow.core.sizes import size_order

# the columns, as in the paper: standard left, deduplicated right (the `variants` enum of the
# config schema); a suite with one variant shows "no results" in the other
VARIANTS = ("standard", "deduped")
SECOND_EPOCH = "epoch 2 starts"


def panel_rows(sub: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(metric, y label, y scale) of the two rows of panels: accuracy and perplexity, or for
    a multiple-choice task (no perplexity) accuracy and length-normalised accuracy."""
    if (sub["metric"] == "perplexity").any():
        return [("acc", "accuracy", "linear"), ("perplexity", "perplexity", "log")]
    return [
        ("acc", "accuracy", "linear"),
        ("acc_norm", "accuracy (length-normalised)", "linear"),
    ]


def _draw_lines(ax, part: pd.DataFrame, sizes, colors, yscale: str, handles: dict) -> None:
    """One line per size of `part` (one variant, one metric) over the steps."""
    for size in sizes:
        line = finite_rows(part[part["size"] == size].sort_values("step"))
        if yscale == "log":
            line = line[line["value"] > 0]
        if line.empty:
            continue
        (h,) = ax.plot(line["step"], line["value"], marker="o", ms=3, lw=1.5, color=colors[size])
        handles.setdefault(size, h)


def _style_panel(ax, *, empty: bool, yscale: str, label: str | None, title: str | None) -> None:
    """Symlog step axis (linear below 1, so step 0 shows), grid, labels of the outer panels."""
    from matplotlib.ticker import FuncFormatter

    if empty:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yscale(yscale)
    ax.grid(True, which="major", alpha=0.3)
    if label is not None:
        ax.set_ylabel(label)
    if title is not None:
        ax.set_title(title)
    else:
        ax.set_xlabel("step (symlog)")


def plot_over_training(
    df: pd.DataFrame,
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    task: str = "lambada_cloze",
    shots: int = 0,
    sizes_order: Sequence[str] | None = None,
    epoch_boundaries: Mapping[str, int | None] | None = None,
    title: str | None = None,
):
    """Fig. 10 analogue: accuracy (top) and perplexity (bottom, log) of `task` over training steps,
    standard (left) vs deduped (right), one line per size in a sequential colormap.

    x is the step on a symlog axis (linear below 1, so step 0 shows). `epoch_boundaries[variant]`
    (the step where that variant's data starts its second epoch) draws a dashed vertical line.
    Returns the saved Figure (panels row by row: fig.axes[2 * row + column]).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state (renders with Agg)

    sub = df[(df["task"] == task) & (df["shots"] == shots)]
    if sub.empty:
        have = sorted({(t, int(s)) for t, s in zip(df["task"], df["shots"], strict=True)})
        raise ValueError(f"no results for task {task!r} at {shots} shots (have: {have})")
    sizes = size_order(sub["size"], sizes_order)
    missing = set(sub["size"]) - set(sizes)
    if missing:
        raise ValueError(f"sizes_order lacks sizes present in the results: {sorted(missing)}")
    colors = ramp_colors(sizes)
    boundaries = dict(epoch_boundaries or {})
    max_step = max(int(sub["step"].max()), 1)

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, sharey="row", squeeze=False)
    handles: dict[str, object] = {}
    for col, variant in enumerate(VARIANTS):
        for row, (metric, label, yscale) in enumerate(panel_rows(sub)):
            ax = axes[row][col]
            part = sub[(sub["variant"] == variant) & (sub["metric"] == metric)]
            _draw_lines(ax, part, sizes, colors, yscale, handles)
            # a variant that never reaches its second epoch gets no line (as standard Pythia)
            if boundaries.get(variant) is not None and boundaries[variant] <= max_step:
                h = ax.axvline(boundaries[variant], color="0.3", ls="--", lw=1)
                handles.setdefault(SECOND_EPOCH, h)
            _style_panel(
                ax,
                empty=part.empty,
                yscale=yscale,
                label=label if col == 0 else None,
                title=variant if row == 0 else None,
            )
    axes[0][0].set_xlim(-0.3, max_step * 1.5)
    order = [s for s in sizes if s in handles] + [k for k in handles if k not in sizes]
    fig.legend(
        [handles[k] for k in order], order, loc="outside right center", title="model", frameon=False
    )
    fig.suptitle(title or f"{task} over training ({shots}-shot)")
    save_figure(fig, out_pdf, out_png)
    return fig


def epoch_boundaries(
    configured: Mapping[str, float],
    samples_meta: Mapping[str, str | os.PathLike],
    global_batch_size: int,
) -> dict[str, float]:
    """The step at which each variant's data starts its second epoch: from the run's sample
    files when it trained (samples_per_epoch / batch), else as configured (published
    checkpoints: eval.epoch_boundaries)."""
    out = {k: float(v) for k, v in configured.items()}
    for variant, path in samples_meta.items():
        out[variant] = read_json(path)["samples_per_epoch"] / global_batch_size
    return out
