"""Fig. 7 of the paper (rule fig_term_frequency): accuracy against how often the operand x1
occurred in the data the checkpoint had seen, on log-spaced frequency bins.

The bins follow term_frequency.protocol. ``embedded`` (the default): term_frequency.bins bins
spanning the observed counts (frequency_bins), [lo, hi) each, drawn at their geometric centres;
a tiny suite's counts are far below the paper's. ``pythia``: Pythia's fixed edges (pythia_bins,
np.logspace(5, log10(2e8), 20): 19 bins from 1e5 to 2e8), (lo, hi] each as pandas.cut makes
them, drawn at their left edge as Pythia's plot labels them, accuracy on 0..1; an x1 counted
outside them is left out, as of any binning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from workflow.core.plotting import ramp_colors, save_figure
from workflow.studies.term_frequency.config import TermFrequencyError, check_protocol

log = logging.getLogger(__name__)


def pythia_bins() -> np.ndarray:
    """Pythia's Fig. 7 bin edges (protocol pythia): 20 log-spaced edges from 1e5 to 2e8."""
    return np.logspace(5, np.log10(2e8), 20)


def frequency_bins(counts: Sequence[int], num_bins: int) -> np.ndarray:
    """`num_bins` log-spaced bin edges from the smallest to the largest positive count (protocol
    embedded; Pythia's fixed edges are pythia_bins); x1 never seen (count 0) fall outside."""
    c = np.asarray(counts)
    c = c[c > 0]
    if not c.size:
        raise TermFrequencyError("no x1 occurs in the counted data: nothing to bin")
    lo, hi = float(c.min()), float(c.max())
    if hi == lo:
        hi = lo * 1.0001
    return np.geomspace(lo, hi * 1.0001, num_bins + 1)


def binned_accuracy(
    accuracy, counts, edges, protocol: str = "embedded"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin positions, mean accuracy, x1 per bin) of the x1 whose count falls in each bin;
    empty bins are dropped. embedded: bins [lo, hi) at their geometric centres; pythia: bins
    (lo, hi] (pandas.cut) at their left edges, as integers (Pythia's labels)."""
    acc, cnt = np.asarray(accuracy, float), np.asarray(counts, float)
    pythia = check_protocol(protocol) == "pythia"
    idx = np.searchsorted(edges, cnt, side="left" if pythia else "right") - 1
    ok = (cnt > 0) & (idx >= 0) & (idx < len(edges) - 1)
    n = np.bincount(idx[ok], minlength=len(edges) - 1)
    s = np.bincount(idx[ok], weights=acc[ok], minlength=len(edges) - 1)
    if pythia:
        at = np.asarray(edges[:-1]).astype(np.int64)
    else:
        at = np.sqrt(edges[:-1] * edges[1:])
    has = n > 0
    return at[has], s[has] / n[has], n[has]


def _layout(axes, sizes: Sequence[str], ncols: int, nrows: int) -> None:
    """Hide the unused panels; x label under the bottom row, y label left of the first column."""
    for ax in axes[len(sizes) :]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols :]:
        ax.set_xlabel("x1 frequency in the data seen")
    for ax in axes[::ncols]:
        ax.set_ylabel("accuracy")


def plot_frequency_accuracy(
    table,
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    operation: str,
    shots: int,
    sizes_order: Sequence[str],
    num_bins: int,
    protocol: str = "embedded",
):
    """Fig. 7: accuracy (mean over x2, then over the x1 of a bin) against the x1 count, on
    log-spaced bins shared by all panels (embedded: `num_bins` over the observed counts; pythia:
    pythia_bins); one panel per size, one line per step. Returns the saved Figure."""
    pythia = check_protocol(protocol) == "pythia"
    from matplotlib.figure import Figure

    sub = table[(table["operation"] == operation) & (table["shots"] == shots)]
    if sub.empty:
        have = sorted(
            {(o, int(k)) for o, k in zip(table["operation"], table["shots"], strict=True)}
        )
        raise TermFrequencyError(f"no results for {operation} at {shots} shots (have: {have})")
    sizes = [s for s in sizes_order if s in set(sub["size"])]
    steps = sorted(sub["step"].unique())
    if pythia:
        edges = pythia_bins()
        c = sub["count"].to_numpy()
        outside = np.unique(sub["x1"].to_numpy()[(c <= edges[0]) | (c > edges[-1])])
        if outside.size:
            log.warning(
                "%d x1 have a count outside Pythia's bins (%.0e, %.0e] at some step and are "
                "left out there: %s",
                outside.size, edges[0], edges[-1], outside[:10].tolist(),
            )  # fmt: skip
    else:
        edges = frequency_bins(sub["count"].to_numpy(), num_bins)
    ncols = min(4, len(sizes))
    nrows = -(-len(sizes) // ncols)
    fig = Figure(figsize=(3.2 * ncols + 1.5, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).reshape(-1)
    colors = ramp_colors(steps)
    handles = {}
    for ax, size in zip(axes, sizes, strict=False):
        for step in steps:
            g = sub[(sub["size"] == size) & (sub["step"] == step)]
            x, y, _ = binned_accuracy(g["accuracy"], g["count"], edges, protocol)
            if len(x):
                (h,) = ax.plot(x, y, marker="o", ms=3, lw=1.3, color=colors[step])
                handles.setdefault(step, h)
        ax.set_xscale("log")
        if pythia:
            ax.set_ylim(0.0, 1.0)
        ax.set_title(size)
        ax.grid(True, alpha=0.3)
    _layout(axes, sizes, ncols, nrows)
    fig.legend(
        [handles[s] for s in steps if s in handles],
        [f"step {s}" for s in steps if s in handles],
        loc="outside right center",
        frameon=False,
    )
    fig.suptitle(f"{operation}, {shots}-shot: accuracy against operand frequency")
    save_figure(fig, out_pdf, out_png)
    return fig
