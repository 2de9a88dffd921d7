"""lm-eval's built-in tasks (the paper's lambada_openai, piqa, ...): their names checked
offline before any training (rule check_eval_tasks), their data downloaded once where there is
network (rule prefetch_eval_data), and the ``datasets`` settings both that download and the
offline eval jobs use, so that both see the same cache keys."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager


@contextmanager
def datasets_quiet():
    """`datasets` settings for prefetch and eval alike: no download-count ping to S3, and the
    task's own data files rather than the dataset viewer's parquet export (the cache key must
    be the same in the prefetch job and in the offline eval job)."""
    import datasets.config

    saved = datasets.config.HF_UPDATE_DOWNLOAD_COUNTS, datasets.config.USE_PARQUET_EXPORT
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    datasets.config.USE_PARQUET_EXPORT = False
    try:
        yield
    finally:
        datasets.config.HF_UPDATE_DOWNLOAD_COUNTS, datasets.config.USE_PARQUET_EXPORT = saved


def check_task_names(tasks: Sequence[str], tasks_dir: str | os.PathLike | None = None):
    """Refuse task names lm-eval does not know, from its task index only (offline, no data):
    the rules run this before any training job, so a typo fails in seconds, not after the
    first model is trained. Returns lm-eval's TaskManager."""
    from lm_eval.tasks import TaskManager

    include = None if tasks_dir is None else str(tasks_dir)
    manager = TaskManager(include_path=include, include_defaults=True)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(f"unknown lm-eval task(s) {unknown} (neither built-in nor in {tasks_dir})")
    return manager


def _documents(task) -> dict[str, int]:
    """Documents per split of a loaded lm-eval task."""
    splits = {}
    for split in ("test", "validation", "train"):
        has = getattr(task, f"has_{split}_docs", None)
        if has is not None and has():
            splits[split] = len(list(getattr(task, f"{split}_docs")()))
    return splits


def prefetch_tasks(tasks: Sequence[str], tasks_dir: str | os.PathLike | None = None) -> dict:
    """Load every task once so that its data lands in the `datasets` cache (HF_DATASETS_CACHE /
    HF_HOME): run where there is network, then eval jobs run with HF_DATASETS_OFFLINE=1 on
    compute nodes without it. Returns {task: {dataset, documents per split}}."""
    from lm_eval.tasks import get_task_dict

    manager = check_task_names(tasks, tasks_dir)
    with datasets_quiet():
        loaded = get_task_dict(list(tasks), manager)  # downloads each task's dataset
    out = {}
    for name, task in loaded.items():
        cfg = getattr(task, "config", None)
        out[str(name)] = {
            "dataset": getattr(cfg, "dataset_path", None),
            "dataset_name": getattr(cfg, "dataset_name", None),
            "documents": _documents(task),
        }
    return out
