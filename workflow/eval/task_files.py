"""lm-eval task files: a jsonl of documents and a task YAML over it.

Every local task of the suite (the cloze task, the multiple-choice tasks, the arithmetic tasks
of the term-frequency study, the bias tasks of the intervention) is a ``json`` dataset whose
``test`` split is one jsonl file, named by its absolute path: lm-eval resolves relative
``data_files`` against the working directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from workflow.core.io import atomic_path, write_text


def write_jsonl(path: str | os.PathLike, records: Iterable[dict], *, ensure_ascii: bool = True):
    """One JSON object per line, atomically (UTF-8)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=ensure_ascii) + "\n")


def metric(name: str, aggregation: str, higher_is_better: bool) -> dict[str, Any]:
    """One entry of a task's metric_list."""
    return {"metric": name, "aggregation": aggregation, "higher_is_better": higher_is_better}


def task_spec(
    name: str,
    data_jsonl: str | os.PathLike,
    output_type: str,
    metrics: list[dict[str, Any]],
    **fields: Any,
) -> dict[str, Any]:
    """A task over the jsonl `data_jsonl` (its test split, absolute path): the common head,
    then `fields` in the given order (doc_to_text, doc_to_target, ...), then the metrics."""
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(Path(data_jsonl).resolve())}},
        "output_type": output_type,
        "test_split": "test",
        **fields,
        "metric_list": metrics,
        "metadata": {"version": 1.0},
    }


def task_yaml(spec: dict[str, Any]) -> str:
    """The YAML text of a task spec, keys in the spec's order."""
    return yaml.safe_dump(spec, sort_keys=False)


def write_task_file(spec: dict[str, Any], out_yaml: str | os.PathLike) -> Path:
    write_text(out_yaml, task_yaml(spec))
    return Path(out_yaml)
