"""What every figure shares: the pdf + png pair it is saved as, its colour ramps, and the
finite values it draws. Figures are built on ``matplotlib.figure.Figure`` (no pyplot: no
global backend state; renders with Agg)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from workflow.core.io import atomic_path

DPI = 150


def save_figure(fig, out_pdf: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Write `fig` atomically as PDF (no creation date: the same figure gives the same bytes)
    and PNG, cropped to what is drawn."""
    for path, fmt in ((out_pdf, "pdf"), (out_png, "png")):
        with atomic_path(Path(path)) as tmp:
            kwargs = {"metadata": {"CreationDate": None}} if fmt == "pdf" else {}
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", **kwargs)


def ramp_colors(
    keys: Sequence, cmap: str = "viridis", start: float = 0.0, span: float = 0.9
) -> dict:
    """{key: colour}: `keys` in order along `cmap` from `start` over `span` of it (the last
    key at start + span; one key at start). Sizes, steps and fractions get ordered colours."""
    from matplotlib import colormaps

    ramp = colormaps[cmap]
    return {k: ramp(start + span * i / max(len(keys) - 1, 1)) for i, k in enumerate(keys)}


def finite_rows(frame, column: str = "value"):
    """The rows of `frame` whose `column` is a finite number (NaN and inf are not drawn)."""
    # an empty frame's boolean mask is an object Series: pandas would read it as a column
    # list and drop every column (a one-variant suite has no deduped rows)
    return frame[frame[column].map(math.isfinite).astype(bool)]
