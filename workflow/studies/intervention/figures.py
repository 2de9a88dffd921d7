"""The intervention's table and Figures 1, 2 and 6 (paper §3.1).

Metric conventions (the paper's text and notebooks disagree, reference §6c):

* CrowS-Pairs: ``pct_stereotype`` as lm-eval computes it - the share of pairs whose
  stereotypical sentence has the higher log-likelihood; 0.5 = no preference (Fig. 1).
* WinoBias: net bias = accuracy on the pro-stereotypical set minus accuracy on the
  anti-stereotypical set (the Pythia notebook's pro - anti; 0 = unbiased, < 0 = the model now
  prefers anti-stereotypical referents), with stderr sqrt(se_pro² + se_anti²) (Fig. 2).
* LAMBADA: accuracy, the sanity check that the intervention does not hurt the model (Fig. 6).

The x axis is the share of training done, step / train_iters, in %, over the window.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from workflow.core.io import read_checked_json
from workflow.figures.evals import _savefig, metric_rows, size_key

PATH = re.compile(
    r"evals/intervention/(?P<size>[^/]+)/(?P<run>intervention\d+)/(?P<arm>baseline|intervention)"
    r"/step(?P<step>\d+)\.json$"
)
COLUMNS = [
    "size",
    "run",
    "fraction",
    "arm",
    "step",
    "pct_training",
    "task",
    "metric",
    "value",
    "stderr",
]
FIGURES = {
    # fig: (task key, metric, y label, reference line, paper figure)
    "crows_pairs": ("crows", "pct_stereotype", "CrowS-Pairs % stereotype", 0.5, "Fig. 1"),
    "winobias": ("winobias", "net_bias", "WinoBias net bias (pro - anti)", 0.0, "Fig. 2"),
    "lambada": ("lambada", "acc", "LAMBADA accuracy", None, "Fig. 6"),
}


def intervention_table(
    paths: Iterable[str | os.PathLike],
    runs: Sequence[Mapping],
    *,
    train_iters: int,
    winobias_tasks: Sequence[str],
) -> pd.DataFrame:
    """Long table of both arms over every run's window, plus the WinoBias net-bias rows."""
    fractions = {(r["size"], r["name"]): r["fraction"] for r in runs}
    rows = []
    for path in paths:
        posix = Path(path).as_posix()
        m = PATH.search(posix)
        if m is None:
            raise ValueError(
                f"{posix}: not an intervention eval (…/evals/intervention/{{size}}/"
                "intervention{pct}/{baseline|intervention}/step{N}.json)"
            )
        key = (m["size"], m["run"])
        if key not in fractions:
            raise ValueError(f"{posix}: no intervention run {key} in the config")
        step = int(m["step"])
        # refuses a damaged or edited result, naming the rule that rebuilds it
        results = read_checked_json(path, rule=posix).get("results") or {}
        for row in metric_rows(results):
            rows.append((*key, fractions[key], m["arm"], step, 100.0 * step / train_iters, *row))
    if not rows:
        raise ValueError("no intervention results to collect")
    df = pd.DataFrame(rows, columns=COLUMNS)
    pro, anti = winobias_tasks
    keys = ["size", "run", "fraction", "arm", "step", "pct_training"]
    acc = df[df["metric"] == "acc"]
    p = acc[acc["task"] == pro].set_index(keys)
    a = acc[acc["task"] == anti].set_index(keys)
    both = p.join(a, lsuffix="_pro", rsuffix="_anti", how="inner").reset_index()
    if not both.empty:
        net = both[keys].copy()
        net["task"] = "winobias"
        net["metric"] = "net_bias"
        net["value"] = both["value_pro"] - both["value_anti"]
        net["stderr"] = (both["stderr_pro"] ** 2 + both["stderr_anti"] ** 2) ** 0.5
        df = pd.concat([df, net[COLUMNS]], ignore_index=True)
    return df.sort_values(["size", "run", "arm", "step", "task", "metric"], ignore_index=True)


def plot_intervention(
    df: pd.DataFrame,
    fig_name: str,
    tasks: Mapping[str, str],
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
) -> None:
    """One panel per intervened size: the baseline (black) and each intervention run (by
    fraction) over % of training, with ±1 stderr bands and the no-bias line."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    if fig_name not in FIGURES:
        raise ValueError(f"figure {fig_name!r}: expected one of {sorted(FIGURES)}")
    key, metric, ylabel, ref, paper = FIGURES[fig_name]
    task = tasks[key]
    sub = df[(df["task"] == task) & (df["metric"] == metric)]
    if sub.empty:
        raise ValueError(f"{fig_name}: no {task}/{metric} results in the intervention table")
    sizes = sorted(sub["size"].unique(), key=size_key)
    fractions = sorted(sub["fraction"].unique())
    cmap = colormaps["plasma"]
    colors = {f: cmap(0.15 + 0.6 * i / max(len(fractions) - 1, 1)) for i, f in enumerate(fractions)}
    fig = Figure(figsize=(3.2 * len(sizes) + 1.5, 3.4), layout="constrained")
    axes = fig.subplots(1, len(sizes), squeeze=False, sharey=True)[0]
    handles: dict[str, object] = {}
    for ax, size in zip(axes, sizes, strict=True):
        part = sub[sub["size"] == size]
        # the baseline of the longest window (all runs of a size share the same baseline)
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
        for label, line, color in lines:
            line = line[line["value"].map(math.isfinite).astype(bool)]
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
    _savefig(fig, Path(out_pdf), "pdf")
    _savefig(fig, Path(out_png), "png")
