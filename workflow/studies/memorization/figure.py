"""Fig. 3 of the paper (rule fig_memorization_qq): memorized samples per block of training
against a Poisson distribution of the same mean, as a Q-Q plot per data variant."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from workflow.core.plotting import save_figure
from workflow.studies.memorization.poisson import poisson_qq


def plot_poisson_qq(
    panels: Sequence[dict],
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
    title: str,
):
    """Fig. 3: one Q-Q panel per entry of `panels` (top to bottom), each a dict with `label`,
    `counts` and the dispersion-test fields. Dot size and colour give the number of blocks at
    the same point, as in the paper; the line is y = x. Returns the saved Figure."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(5.2, 3.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    cmap = colormaps["viridis"]
    for ax, panel in zip(axes, panels, strict=True):
        theo, sample = poisson_qq(np.asarray(panel["counts"]), panel["lambda"])
        points, overlap = np.unique(np.stack([theo, sample], axis=1), axis=0, return_counts=True)
        sc = ax.scatter(
            points[:, 0],
            points[:, 1],
            s=12 + 60 * overlap / overlap.max(),
            c=overlap,
            cmap=cmap,
            edgecolors="none",
        )
        fig.colorbar(sc, ax=ax, label="blocks at this point")
        hi = max(float(theo.max()), float(sample.max()), 1.0)
        ax.plot([0, hi], [0, hi], color="black", lw=1, ls="--", label="y = x")
        stat = (
            f"dispersion {panel['dispersion']:.2f}, "
            f"$\\chi^2_{{{panel['df']}}}$ = {panel['statistic']:.1f}, p = {panel['p_value']:.2g}"
            if not math.isnan(panel["statistic"])
            else "no memorized samples"
        )
        ax.set_title(
            f"{panel['label']}: {panel['blocks']} blocks of {panel['block_size']}, "
            f"$\\lambda$ = {panel['lambda']:.2f}\n{stat}",
            fontsize=9,
        )
        ax.set_xlabel("Poisson quantiles")
        ax.set_ylabel("memorized per block")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_pdf, out_png)
    return fig
