"""Tables and figures from evaluation results: the long eval table and the Fig. 10 analogue.

Fig. 10 of the Pythia paper shows LAMBADA over training, standard models left and deduplicated
models right, one line per size, with a dashed line where the deduplicated data starts its second
epoch. ``plot_over_training`` draws that (plus a perplexity row) for any task in the eval table.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workflow.core.io import atomic_path, read_checked_json, read_json

COLUMNS = ["variant", "size", "step", "shots", "task", "metric", "value", "stderr"]
VARIANTS = ("standard", "deduped")
EVAL_PATH = re.compile(
    r"(?:^|/)evals/(?P<variant>[^/]+)/(?P<size>[^/]+)/step(?P<step>\d+)/(?P<shots>\d+)shot\.json$"
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmbt])\b", re.IGNORECASE)
_UNIT = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def size_key(size: str) -> tuple[float, str]:
    """Sort key for model names by parameter count: 'tiny-70m' < 'tiny-1b' < 'tiny-1.4b' < '12b'."""
    matches = list(_SIZE.finditer(size))
    m = matches[-1] if matches else None
    value = float(m.group(1)) * _UNIT[m.group(2).lower()] if m else math.inf
    return (value, size)


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
    order = {s: i for i, s in enumerate(sorted(df["size"].unique(), key=size_key))}
    df = df.sort_values(
        ["variant", "size", "step", "shots", "task", "metric"],
        key=lambda c: c.map(order) if c.name == "size" else c,
    )
    return df.reset_index(drop=True)


def compare_with_reference(df: pd.DataFrame, reference: Mapping[str, Any]) -> pd.DataFrame:
    """Our results at the reference's step and shots beside the published values
    (`config/pythia.yaml` eval.reference: the paper's zero-shot table at step 143000).

    One row per (variant, size, task, metric) the reference lists: ours, our stderr, the paper's
    value, the difference and z = difference / stderr. Models or metrics we did not evaluate get
    an empty `ours` (and are listed, so a missing evaluation is visible)."""
    step, shots = int(reference["step"]), int(reference.get("shots", 0))
    mine = df[(df["step"] == step) & (df["shots"] == shots)]
    index = {(r.variant, r.size, r.task, r.metric): (r.value, r.stderr) for r in mine.itertuples()}
    rows = []
    for variant, sizes in reference["values"].items():
        for size, tasks in sizes.items():
            for task, metrics in tasks.items():
                for metric, paper in metrics.items():
                    ours, stderr = index.get((variant, str(size), task, metric), (None, None))
                    diff = None if ours is None else ours - paper
                    z = diff / stderr if diff is not None and stderr else None
                    rows.append((variant, str(size), task, metric, ours, stderr, paper, diff, z))
    columns = ["variant", "size", "task", "metric", "ours", "stderr", "paper", "diff", "z"]
    return pd.DataFrame(rows, columns=columns).astype(
        {c: "float64" for c in ("ours", "stderr", "paper", "diff", "z")}
    )


def write_table(df: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """Write `df` atomically as .csv or .parquet (by extension)."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        if out_path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif out_path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            raise ValueError(f"table {out_path}: expected a .csv or .parquet file name")


def _savefig(fig, path: Path, fmt: str) -> None:
    with atomic_path(path) as tmp:
        kwargs = {"metadata": {"CreationDate": None}} if fmt == "pdf" else {}
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", **kwargs)


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
) -> None:
    """Fig. 10 analogue: accuracy (top) and perplexity (bottom, log) of `task` over training steps,
    standard (left) vs deduped (right), one line per size in a sequential colormap.

    x is the step on a symlog axis (linear below 1, so step 0 shows). `epoch_boundaries[variant]`
    (the step where that variant's data starts its second epoch) draws a dashed vertical line.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend state (renders with Agg)
    from matplotlib.ticker import FuncFormatter

    sub = df[(df["task"] == task) & (df["shots"] == shots)]
    if sub.empty:
        have = sorted({(t, int(s)) for t, s in zip(df["task"], df["shots"], strict=True)})
        raise ValueError(f"no results for task {task!r} at {shots} shots (have: {have})")
    sizes = list(sizes_order) if sizes_order else sorted(sub["size"].unique(), key=size_key)
    missing = set(sub["size"]) - set(sizes)
    if missing:
        raise ValueError(f"sizes_order lacks sizes present in the results: {sorted(missing)}")
    cmap = colormaps["viridis"]
    colors = {s: cmap(0.9 * i / max(len(sizes) - 1, 1)) for i, s in enumerate(sizes)}
    # multiple-choice tasks have no perplexity: their second row is the length-normalised acc
    if (sub["metric"] == "perplexity").any():
        rows = [("acc", "accuracy", "linear"), ("perplexity", "perplexity", "log")]
    else:
        rows = [
            ("acc", "accuracy", "linear"),
            ("acc_norm", "accuracy (length-normalised)", "linear"),
        ]
    boundaries = dict(epoch_boundaries or {})
    max_step = max(int(sub["step"].max()), 1)

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, sharey="row", squeeze=False)
    handles: dict[str, object] = {}
    for col, variant in enumerate(VARIANTS):
        for row, (metric, label, yscale) in enumerate(rows):
            ax = axes[row][col]
            part = sub[(sub["variant"] == variant) & (sub["metric"] == metric)]
            for size in sizes:
                line = part[part["size"] == size].sort_values("step")
                # an empty frame's boolean mask is an object Series: pandas would read it as a
                # column list and drop every column (a one-variant suite has no deduped rows)
                line = line[line["value"].map(math.isfinite).astype(bool)]
                if yscale == "log":
                    line = line[line["value"] > 0]
                if line.empty:
                    continue
                (h,) = ax.plot(
                    line["step"], line["value"], marker="o", ms=3, lw=1.5, color=colors[size]
                )
                handles.setdefault(size, h)
            # a variant that never reaches its second epoch gets no line (as standard Pythia)
            if boundaries.get(variant) is not None and boundaries[variant] <= max_step:
                h = ax.axvline(boundaries[variant], color="0.3", ls="--", lw=1)
                handles.setdefault("epoch 2 starts", h)
            if part.empty:
                ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
            ax.set_xscale("symlog", linthresh=1, linscale=0.5)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_yscale(yscale)
            ax.grid(True, which="major", alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(variant)
            else:
                ax.set_xlabel("step (symlog)")
    axes[0][0].set_xlim(-0.3, max_step * 1.5)
    order = [s for s in sizes if s in handles] + [k for k in handles if k not in sizes]
    fig.legend(
        [handles[k] for k in order], order, loc="outside right center", title="model", frameon=False
    )
    fig.suptitle(title or f"{task} over training ({shots}-shot)")
    _savefig(fig, Path(out_pdf), "pdf")
    _savefig(fig, Path(out_png), "png")


def score_table(
    df: pd.DataFrame,
    *,
    step: int,
    shots: int,
    variant: str,
    sizes_order: Sequence[str] | None = None,
    metric: str = "acc",
) -> pd.DataFrame:
    """The paper's Tables 7-14 layout: one row per model size, one column per task with
    `metric` (and `<task>_stderr`) at `step` and `shots`, for one data variant."""
    sub = df[
        (df["step"] == step)
        & (df["shots"] == shots)
        & (df["variant"] == variant)
        & (df["metric"] == metric)
    ]
    if sub.empty:
        raise ValueError(f"no {metric} results for {variant} at step {step}, {shots}-shot")
    sizes = [s for s in (sizes_order or sorted(sub["size"].unique(), key=size_key))]
    tasks = sorted(sub["task"].unique())
    rows = []
    for size in sizes:
        row: dict[str, Any] = {"size": size}
        for task in tasks:
            hit = sub[(sub["size"] == size) & (sub["task"] == task)]
            row[task] = hit["value"].iloc[0] if len(hit) else None
            row[f"{task}_stderr"] = hit["stderr"].iloc[0] if len(hit) else None
        rows.append(row)
    return pd.DataFrame(rows)


def render_markdown(table: pd.DataFrame, title: str) -> str:
    """A score table as Markdown, each cell `value ± stderr` (as the paper prints them)."""
    tasks = [c for c in table.columns if c != "size" and not c.endswith("_stderr")]
    lines = [
        f"### {title}",
        "",
        "| model | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for _, row in table.iterrows():
        cells = []
        for t in tasks:
            v, e = row[t], row[f"{t}_stderr"]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("–")
            elif e is None or (isinstance(e, float) and math.isnan(e)):
                cells.append(f"{v:.4f}")
            else:
                cells.append(f"{v:.4f} ± {e:.4f}")
        lines.append(f"| {row['size']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
) -> None:
    """Fig. 9 analogue: accuracy of every task against model size at one step (the last
    checkpoint before the deduped data's second epoch)."""
    from matplotlib.figure import Figure

    sub = df[
        (df["step"] == step)
        & (df["shots"] == shots)
        & (df["variant"] == variant)
        & (df["metric"] == "acc")
    ]
    if sub.empty:
        raise ValueError(f"no acc results for {variant} at step {step}, {shots}-shot")
    sizes = list(sizes_order) if sizes_order else sorted(sub["size"].unique(), key=size_key)
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
    _savefig(fig, Path(out_pdf), "pdf")
    _savefig(fig, Path(out_png), "png")


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
