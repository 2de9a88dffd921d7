"""Evaluate checkpoints with EleutherAI's lm-evaluation-harness on local task files.

Pythia evaluates every checkpoint with lm-eval (reference/pythia.md §5). Offline we build a
LAMBADA-style last-word cloze task from held-out corpus documents (``build_cloze_task``), write it
as an lm-eval YAML task with an absolute data path (``write_task_yaml``), and run
``lm_eval.simple_evaluate`` on a checkpoint directory or a Hub repo at a ``step{N}`` revision
(``evaluate_checkpoint``). See reference/eval-offline.md for the pitfalls this module avoids.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from workflow.core.checkpoint import CHECKPOINT_JSON, provenance_path, published_files
from workflow.core.io import (
    atomic_path,
    read_json,
    sha256_file,
    verify_files,
    write_checked_json,
    write_text,
)

CLOZE_TASK = "lambada_cloze"
MIN_WORDS = 5
# LAMBADA targets are bare words: sentence punctuation after the final word is dropped.
TRAILING_PUNCT = ".!?,;:"


# --------------------------------------------------------------------------------- cloze task


def cloze_passage(text: str, max_words: int) -> str | None:
    """The last `max_words` words of `text`, single-spaced, ending in a bare final word.

    None when the document has fewer than MIN_WORDS words.
    """
    words = text.split()
    while words:
        last = words[-1].rstrip(TRAILING_PUNCT)
        if last:
            words[-1] = last
            break
        words.pop()  # a trailing token of pure punctuation ("...")
    if len(words) < MIN_WORDS:
        return None
    return " ".join(words[-max_words:])


def build_cloze_task(
    heldout_jsonl: str | os.PathLike,
    out_jsonl: str | os.PathLike,
    *,
    num_documents: int,
    seed: int = 1234,
    max_words: int = 60,
) -> dict[str, Any]:
    """Write a last-word cloze set (``{"text": passage}`` lines) from held-out documents.

    Up to `num_documents` eligible documents are chosen with `seed` (kept in file order). Returns a
    summary: {source, out, num_documents, eligible, skipped_short, seed, max_words, sha256}.
    """
    heldout_jsonl = Path(heldout_jsonl)
    if num_documents < 1:
        raise ValueError(f"num_documents must be >= 1, got {num_documents}")
    if max_words < MIN_WORDS:
        raise ValueError(f"max_words must be >= {MIN_WORDS}, got {max_words}")
    passages, short = [], 0
    with open(heldout_jsonl) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f"{heldout_jsonl}:{lineno}: expected a JSON object with a 'text' field"
                ) from None
            passage = cloze_passage(text, max_words)
            if passage is None:
                short += 1
            else:
                passages.append(passage)
    if not passages:
        raise ValueError(f"{heldout_jsonl}: no document has >= {MIN_WORDS} words for a cloze task")
    chosen = range(len(passages))
    if len(passages) > num_documents:
        chosen = sorted(random.Random(seed).sample(range(len(passages)), num_documents))
    with atomic_path(out_jsonl) as tmp:
        with open(tmp, "w") as f:
            for i in chosen:
                f.write(json.dumps({"text": passages[i]}) + "\n")
    return {
        "source": str(heldout_jsonl),
        "out": str(out_jsonl),
        "num_documents": len(chosen),
        "eligible": len(passages),
        "skipped_short": short,
        "seed": seed,
        "max_words": max_words,
        "sha256": sha256_file(out_jsonl),
    }


def write_task_yaml(
    task_name: str, data_jsonl: str | os.PathLike, out_yaml: str | os.PathLike
) -> Path:
    """An lm-eval loglikelihood task (acc, perplexity) over `data_jsonl`, like lambada_openai.

    The data path is written absolute: lm-eval resolves relative ``data_files`` against the CWD.
    """
    data = Path(data_jsonl).resolve()
    if not data.is_file():
        raise FileNotFoundError(f"task data {data} does not exist")
    task = {
        "task": task_name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "output_type": "loglikelihood",
        "test_split": "test",
        "doc_to_text": "{{text.split(' ')[:-1]|join(' ')}}",
        "doc_to_target": "{{' '+text.split(' ')[-1]}}",
        "metric_list": [
            {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }
    write_text(out_yaml, yaml.safe_dump(task, sort_keys=False))
    return Path(out_yaml)


# ------------------------------------------------------------------------------------ prefetch


@contextmanager
def _datasets_quiet():
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


LOCAL_TASKS = ("lambada_cloze",)  # built by rules from our corpus: nothing to download


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


def prefetch_tasks(tasks: Sequence[str], tasks_dir: str | os.PathLike | None = None) -> dict:
    """Load every task once so that its data lands in the `datasets` cache (HF_DATASETS_CACHE /
    HF_HOME): run where there is network, then eval jobs run with HF_DATASETS_OFFLINE=1 on
    compute nodes without it. Returns {task: {dataset, documents per split}}."""
    from lm_eval.tasks import get_task_dict

    manager = check_task_names(tasks, tasks_dir)
    with _datasets_quiet():
        loaded = get_task_dict(list(tasks), manager)  # downloads each task's dataset
    out = {}
    for name, task in loaded.items():
        cfg = getattr(task, "config", None)
        splits = {}
        for split in ("test", "validation", "train"):
            has = getattr(task, f"has_{split}_docs", None)
            if has is not None and has():
                splits[split] = len(list(getattr(task, f"{split}_docs")()))
        out[str(name)] = {
            "dataset": getattr(cfg, "dataset_path", None),
            "dataset_name": getattr(cfg, "dataset_name", None),
            "documents": splits,
        }
    return out


# --------------------------------------------------------------------------------- evaluation


@contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _clean_metrics(task_results: dict[str, Any]) -> dict[str, float | None]:
    """{'acc,none': 0.1, 'acc_stderr,none': 'N/A', 'alias': ..} -> {'acc': 0.1, 'acc_stderr': None}.

    Keys without a filter suffix (alias, name, sample_len) are not metrics and are dropped.
    """
    out: dict[str, float | None] = {}
    for key, value in task_results.items():
        if "," not in key:
            continue
        name = key.removesuffix(",none")
        if isinstance(value, bool) or not isinstance(value, int | float):
            out[name] = None  # "N/A" stderr when not bootstrapped
        else:
            value = float(value)
            out[name] = value if math.isfinite(value) else None
    return out


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be evaluated; the message names it."""


def check_checkpoint(path: str | os.PathLike) -> None:
    """Before any evaluation: the directory has a config, weights and a tokenizer that fits
    the model's embedding (a tokenizer from another run would index past it, or mis-score)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"checkpoint {path}: no config.json")
    weights = [*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")]
    if not weights:
        raise CheckpointError(
            f"checkpoint {path}: no model weights (model.safetensors or pytorch_model*.bin)"
        )
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"checkpoint {path}: no tokenizer.json")
    record = path / CHECKPOINT_JSON
    if record.is_file():  # the bytes its training segment wrote (digests since issue #9)
        meta = read_json(record)
        # a published copy of the checkpoint has no training state
        files = published_files(meta)
        verify_files(path, files, record=record, rule=meta.get("producer") or str(path))
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(path / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    model_vocab = json.loads((path / "config.json").read_text()).get("vocab_size")
    if model_vocab is not None and vocab > model_vocab:
        raise CheckpointError(
            f"checkpoint {path}: its tokenizer has {vocab} tokens but the model's embedding "
            f"only {model_vocab}: tokenizer and model do not belong together"
        )


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str | None, include_defaults: bool):
    """lm-eval's task index, built once per process (evaluate_checkpoints reuses it)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def evaluate_checkpoint(
    model_path: str | os.PathLike,
    *,
    tasks_dir: str | os.PathLike | None,
    tasks: Sequence[str],
    num_fewshot: int,
    batch_size: int = 16,
    limit: int | None = None,
    revision: str | None = None,
    device: str = "cpu",
    bootstrap_iters: int = 1000,
    log_samples: bool = False,
) -> dict[str, Any]:
    """Run lm-eval's ``simple_evaluate`` with the ``hf`` model on `model_path`.

    `model_path` is a checkpoint directory, or a Hub repo id (then `revision`, e.g. ``step1000``,
    selects the checkpoint; it is refused for a directory, where lm-eval would silently ignore it).
    Only the task YAMLs in `tasks_dir` are indexed (no built-in tasks). Returns a JSON-serialisable
    dict: {results: {task: {metric: value}}, versions, n_samples, config, checkpoint}, and with
    `log_samples` {samples: {task: [{doc, filtered_resps, <metric>: value}]}} (per-document
    scores, e.g. accuracy per operand for the term-frequency study).
    """
    from lm_eval import __version__ as lm_eval_version
    from lm_eval import simple_evaluate

    if tasks_dir is not None:
        tasks_dir = Path(tasks_dir)
        if not tasks_dir.is_dir():
            raise FileNotFoundError(f"lm-eval tasks directory {tasks_dir} does not exist")
    local = Path(model_path).is_dir()
    if local:
        check_checkpoint(model_path)
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} given for the local checkpoint directory {model_path}: "
                "lm-eval ignores revisions of directories; evaluate the step's directory instead"
            )
        # absolute: a relative path could also parse as a Hub repo id and trigger a lookup
        pretrained = str(Path(model_path).resolve())
    else:
        if Path(model_path).exists() or str(model_path).startswith((".", "/")):
            raise FileNotFoundError(f"{model_path} is not a checkpoint directory (does not exist)")
        pretrained = str(model_path)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    include = None if tasks_dir is None else str(tasks_dir)
    task_manager = _task_manager(include, tasks_dir is None)
    if tasks_dir is not None and any(t not in task_manager.all_tasks for t in tasks):
        # lm-eval's own tasks (the paper's lambada_openai, piqa, ...): index the built-ins too
        # (~12 s), only when a task is not one of ours
        task_manager = _task_manager(include, True)
    unknown = [t for t in tasks if t not in task_manager.all_tasks]
    if unknown:
        ours = [] if tasks_dir is None else sorted(p.stem for p in tasks_dir.glob("*.yaml"))
        raise ValueError(
            f"unknown lm-eval task(s) {unknown}: neither a task file in {tasks_dir} "
            f"({ours}) nor an lm-eval built-in"
        )
    model_args: dict[str, Any] = {"pretrained": pretrained, "dtype": "float32"}
    if revision is not None:
        model_args["revision"] = revision
    started = time.perf_counter()
    # DISABLE_MULTIPROC: bootstrap stderr in-process, no worker pool inside a pipeline job.
    # _datasets_quiet: no S3 download-count ping, the same dataset cache keys as the prefetch.
    with _env(DISABLE_MULTIPROC="1"), _datasets_quiet():
        res = simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=tasks,
            task_manager=task_manager,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            device=device,
            limit=limit,
            bootstrap_iters=bootstrap_iters,
            log_samples=log_samples,
        )
    seconds = time.perf_counter() - started
    # what the checkpoint is: our training record (data fingerprint, config hash, step) or,
    # for a published checkpoint, its download receipt (repo, revision, commit, file hashes)
    meta = provenance_path(model_path) if local else Path(model_path) / CHECKPOINT_JSON
    samples = {
        task: [
            {
                "doc": s["doc"],
                "filtered_resps": s["filtered_resps"],
                **{m: s[m] for m in s["metrics"]},
            }
            for s in task_samples
        ]
        for task, task_samples in (res.get("samples") or {}).items()
    }
    return {
        **({"samples": samples} if log_samples else {}),
        "results": {task: _clean_metrics(r) for task, r in res["results"].items()},
        "versions": {task: v for task, v in res.get("versions", {}).items()},
        "n_samples": res.get("n-samples", {}),
        "config": {
            "model_path": pretrained,
            "revision": revision,
            "num_fewshot": num_fewshot,
            "batch_size": batch_size,
            "limit": limit,
            "bootstrap_iters": bootstrap_iters,
            "lm_eval_version": lm_eval_version,
            "model_sha": res["config"].get("model_sha") or None,
            "model_num_parameters": res["config"].get("model_num_parameters"),
        },
        "checkpoint": read_json(meta) if local and meta.is_file() else None,
        "seconds": round(seconds, 3),
    }


def evaluate_checkpoints(
    model_paths: Sequence[str | os.PathLike],
    out_paths: Sequence[str | os.PathLike],
    producer: str | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Evaluate several checkpoints in one process, writing each result (atomically) as soon
    as it is done: the imports, lm-eval's task index and the task data are loaded once, which
    dominates the cost of small models (bench/eval.py)."""
    if len(model_paths) != len(out_paths):
        raise ValueError(f"{len(model_paths)} checkpoints but {len(out_paths)} output paths")
    results = []
    for model_path, out_path in zip(model_paths, out_paths, strict=True):
        result = evaluate_checkpoint(model_path, **kwargs)
        # with its own sha256 and the rule that rebuilds it: the tables refuse a changed file
        result["producer"] = producer
        write_checked_json(out_path, result)
        results.append(result)
    return results
