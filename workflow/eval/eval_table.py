"""The long eval table (rule eval_table): every evaluate_checkpoint JSON of the run, one row per
(variant, size, step, shots, task, metric) with its stderr beside it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from workflow.core.io import read_checked_json
from workflow.core.sizes import size_order

COLUMNS = ["variant", "size", "step", "shots", "task", "metric", "value", "stderr"]
EVAL_PATH = re.compile(
    r"(?:^|/)evals/(?P<variant>[^/]+)/(?P<size>[^/]+)/step(?P<step>\d+)/(?P<shots>\d+)shot\.json$"
)


def _check_one_suite(seen: dict, checkpoint: Any, m: re.Match, posix: str) -> None:
    """One table, one suite: every model of a variant trained on the same samples and every
    checkpoint of a model under the same config. A result left from before a config or data
    change (e.g. a run restricted to some sizes) is refused instead of mixed in."""
    if not isinstance(checkpoint, dict):
        return
    keys = {
        (m["variant"], "data_fingerprint"): checkpoint.get("data_fingerprint"),
        (m["variant"], m["size"], "config_hash"): checkpoint.get("config_hash"),
    }
    for key, value in keys.items():
        if value is None:
            continue
        if key in seen and seen[key][0] != value:
            raise ValueError(
                f"eval result {posix} is of a checkpoint with {key[-1]} {value[:12]}, but "
                f"{seen[key][1]} has {seen[key][0][:12]}: results of two different "
                "configs/data in one table; rerun Snakemake so that every result is rebuilt "
                "under the current config"
            )
        seen.setdefault(key, (value, posix))


def metric_rows(results: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple]:
    """(task, metric, value, stderr) of an lm-eval result's metrics; a stderr goes beside its
    metric, and metrics without a value (stderr "N/A") are left out."""
    for task, metrics in results.items():
        for metric, value in metrics.items():
            if value is None or metric.endswith("_stderr"):
                continue
            stderr = metrics.get(f"{metric}_stderr")
            yield task, metric, float(value), None if stderr is None else float(stderr)


def collect_evals(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Long table [variant, size, step, shots, task, metric, value] from evaluate_checkpoint JSONs.

    variant, size, step and shots come from the path
    ``.../evals/{variant}/{size}/step{N}/{shots}shot.json``.
    Metrics without a value (stderr "N/A") are left out.
    """
    rows = []
    seen: dict[tuple, tuple[str, str]] = {}  # what the rows were trained on -> (value, file)
    for path in paths:
        posix = Path(path).as_posix()
        m = EVAL_PATH.search(posix)
        if m is None:
            raise ValueError(
                f"eval result path {posix} does not match "
                ".../evals/{variant}/{size}/step{N}/{shots}shot.json"
            )
        # refuses a damaged or edited result, naming its rule (or, if unreadable, its path)
        data = read_checked_json(path, rule=posix)
        if not isinstance(data.get("results"), dict):
            raise ValueError(f"eval result {posix} has no 'results' mapping")
        _check_one_suite(seen, data.get("checkpoint"), m, posix)
        for row in metric_rows(data["results"]):
            rows.append((m["variant"], m["size"], int(m["step"]), int(m["shots"]), *row))
    if not rows:
        raise ValueError("no evaluation results to collect (no paths, or no metric values)")
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = df.astype({"step": "int64", "shots": "int64", "value": "float64", "stderr": "float64"})
    order = {s: i for i, s in enumerate(size_order(df["size"]))}
    df = df.sort_values(
        ["variant", "size", "step", "shots", "task", "metric"],
        key=lambda c: c.map(order) if c.name == "size" else c,
    )
    return df.reset_index(drop=True)
