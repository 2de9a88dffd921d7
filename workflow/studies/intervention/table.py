"""The intervention's long table (rule intervention_table): both arms of every run over its
window, and the WinoBias net bias derived from the pro and anti sets (paper §3.1).

WinoBias net bias = accuracy on the pro-stereotypical set minus accuracy on the
anti-stereotypical set (the Pythia notebook's pro - anti; 0 = unbiased, < 0 = the model now
prefers anti-stereotypical referents), with stderr sqrt(se_pro² + se_anti²). The share of
training done, step / train_iters in %, is the figures' x axis.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from workflow.core.io import read_checked_json
from workflow.eval.eval_table import metric_rows

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
    net = net_bias(df, winobias_tasks)
    if not net.empty:
        df = pd.concat([df, net], ignore_index=True)
    return df.sort_values(["size", "run", "arm", "step", "task", "metric"], ignore_index=True)


def net_bias(df: pd.DataFrame, winobias_tasks: Sequence[str]) -> pd.DataFrame:
    """Rows (task "winobias", metric "net_bias") of acc(pro) - acc(anti) at every (run, arm,
    step) that has both, stderr sqrt(se_pro² + se_anti²)."""
    pro, anti = winobias_tasks
    keys = ["size", "run", "fraction", "arm", "step", "pct_training"]
    acc = df[df["metric"] == "acc"]
    p = acc[acc["task"] == pro].set_index(keys)
    a = acc[acc["task"] == anti].set_index(keys)
    both = p.join(a, lsuffix="_pro", rsuffix="_anti", how="inner").reset_index()
    net = both[keys].copy()
    net["task"] = "winobias"
    net["metric"] = "net_bias"
    net["value"] = both["value_pro"] - both["value_anti"]
    net["stderr"] = (both["stderr_pro"] ** 2 + both["stderr_anti"] ** 2) ** 0.5
    return net[COLUMNS]
