"""Figures 1, 2 and 6 of the paper (rule fig_intervention, §3.1), from the intervention table.

Metric conventions (the paper's text and notebooks disagree, reference §6c):

* CrowS-Pairs: ``pct_stereotype`` as lm-eval computes it - the share of pairs whose
  stereotypical sentence has the higher log-likelihood; 0.5 = no preference (Fig. 1).
* WinoBias: net bias = pro - anti accuracy (workflow.studies.intervention.table; 0 = unbiased)
  (Fig. 2).
* LAMBADA: accuracy, the sanity check that the intervention does not hurt the model (Fig. 6).

The x axis is the share of training done, step / train_iters, in %, over the window.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from workflow.core.plotting import finite_rows, ramp_colors, save_figure
from workflow.core.sizes import size_order

FIGURES = {
    # fig: (task key, metric, y label, reference line, paper figure)
    "crows_pairs": ("crows", "pct_stereotype", "CrowS-Pairs % stereotype", 0.5, "Fig. 1"),
    "winobias": ("winobias", "net_bias", "WinoBias net bias (pro - anti)", 0.0, "Fig. 2"),
    "lambada": ("lambada", "acc", "LAMBADA accuracy", None, "Fig. 6"),
}


def size_lines(part: pd.DataFrame, fractions, colors) -> list[tuple[str, pd.DataFrame, object]]:
    """(label, rows, colour) of one size's lines: the baseline of the longest window (all runs
    of a size share the same baseline), then each intervention run from its start."""
    base = part[part["arm"] == "baseline"]
    base = base[base["run"] == base.sort_values("fraction")["run"].iloc[-1]]
    lines = [("baseline", base.sort_values("step"), "black")]
    for f in fractions:
        arm = part[(part["arm"] == "intervention") & (part["fraction"] == f)]
        if arm.empty:
            continue
        start = part[(part["arm"] == "baseline") & (part["fraction"] == f)]
        start = start[start["step"] == start["step"].min()]
        line = pd.concat([start, arm]).sort_values("step")
        lines.append((f"intervention {f:.0%}", line, colors[f]))
    return lines


def plot_intervention(
    df: pd.DataFrame,
    fig_name: str,
    tasks: Mapping[str, str],
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
):
    """One panel per intervened size: the baseline (black) and each intervention run (by
    fraction) over % of training, with ±1 stderr bands and the no-bias line. Returns the
    saved Figure."""
    from matplotlib.figure import Figure

    if fig_name not in FIGURES:
        raise ValueError(f"figure {fig_name!r}: expected one of {sorted(FIGURES)}")
    key, metric, ylabel, ref, paper = FIGURES[fig_name]
    task = tasks[key]
    sub = df[(df["task"] == task) & (df["metric"] == metric)]
    if sub.empty:
        raise ValueError(f"{fig_name}: no {task}/{metric} results in the intervention table")
    sizes = size_order(sub["size"])
    fractions = sorted(sub["fraction"].unique())
    colors = ramp_colors(fractions, "plasma", start=0.15, span=0.6)
    fig = Figure(figsize=(3.2 * len(sizes) + 1.5, 3.4), layout="constrained")
    axes = fig.subplots(1, len(sizes), squeeze=False, sharey=True)[0]
    handles: dict[str, object] = {}
    for ax, size in zip(axes, sizes, strict=True):
        for label, line, color in size_lines(sub[sub["size"] == size], fractions, colors):
            line = finite_rows(line)
            x, y = line["pct_training"], line["value"]
            (h,) = ax.plot(x, y, marker="o", ms=3, lw=1.5, color=color)
            se = line["stderr"].fillna(0.0)
            ax.fill_between(x, y - se, y + se, color=color, alpha=0.15, lw=0)
            handles.setdefault(label, h)
        if ref is not None:
            h = ax.axhline(ref, color="0.5", ls=":", lw=1)
            handles.setdefault("no bias", h)
        ax.set_title(size)
        ax.set_xlabel("% of training")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)
    fig.legend(list(handles.values()), list(handles), loc="outside right center", frameon=False)
    fig.suptitle(f"{paper} analogue: {ylabel} over the intervention window ({task})")
    save_figure(fig, out_pdf, out_png)
    return fig
