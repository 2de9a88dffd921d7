"""Evaluate checkpoints with EleutherAI's lm-evaluation-harness (the evaluate_* rules).

Pythia evaluates every checkpoint with lm-eval (reference/pythia.md §5). ``evaluate_checkpoint``
runs lm-eval's ``hf`` model (``simple_evaluate``'s steps) on a checkpoint directory, or on a
Hub repo at a ``step{N}`` revision, over our local task files (workflow.eval.task_files) and
lm-eval's built-in tasks; ``evaluate_checkpoints`` evaluates several checkpoints of one
model in one process. See reference/eval-offline.md for the pitfalls this module avoids.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workflow.core.checkpoint import CHECKPOINT_JSON, provenance_path, published_files
from workflow.core.io import read_json, verify_files, write_checked_json
from workflow.eval.builtin_tasks import datasets_quiet


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


# ------------------------------------------------------------------ the steps of one evaluation


def _pretrained(model_path: str | os.PathLike, revision: str | None) -> str:
    """What lm-eval's ``hf`` model loads: a checked local directory (absolute: a relative path
    could also parse as a Hub repo id and trigger a lookup), or a Hub repo id."""
    if Path(model_path).is_dir():
        check_checkpoint(model_path)
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} given for the local checkpoint directory {model_path}: "
                "lm-eval ignores revisions of directories; evaluate the step's directory instead"
            )
        return str(Path(model_path).resolve())
    if Path(model_path).exists() or str(model_path).startswith((".", "/")):
        raise FileNotFoundError(f"{model_path} is not a checkpoint directory (does not exist)")
    return str(model_path)


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str | None, include_defaults: bool):
    """lm-eval's task index, built once per process (evaluate_checkpoints reuses it)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def _task_index(tasks: list[str], tasks_dir: Path | None):
    """The task index that knows every task of `tasks`: the task YAMLs in `tasks_dir` only,
    or lm-eval's built-ins when there is no folder or a task is not one of ours."""
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
    return task_manager


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


def _samples(res: dict[str, Any]) -> dict[str, list[dict]]:
    """Per task, each document with the model's filtered answer and its metric values."""
    return {
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


def _provenance(model_path: str | os.PathLike) -> dict | None:
    """What the checkpoint is: our training record (data fingerprint, config hash, step) or,
    for a published checkpoint, its download receipt (repo, revision, commit, file hashes)."""
    if not Path(model_path).is_dir():
        return None
    meta = provenance_path(model_path)
    return read_json(meta) if meta.is_file() else None


# ------------------------------------------------------------------------------ evaluation


def _simple_evaluate(
    *,
    model_args: dict[str, Any],
    tasks: list[str],
    task_manager,
    num_fewshot: int,
    batch_size: int,
    device: str,
    limit: int | None,
    bootstrap_iters: int,
    log_samples: bool,
    models: dict | None = None,
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate(model="hf", ...)`` without the environment report it appends
    to each result: torch's ``collect_env`` (a ``pip list`` subprocess) and ``git describe``,
    ~1 s at every checkpoint, a fifth of a small model's evaluation (issue 18), and nothing
    we keep. What decides the scores is lm-eval's own, in simple_evaluate's order: its default
    seeds, the ``hf`` model from its registry, the tasks from the task manager with
    ``num_fewshot`` and the few-shot seed set as simple_evaluate sets them, then
    ``lm_eval.evaluator.evaluate`` with simple_evaluate's arguments. Returns evaluate's
    result dict with ``config`` = the model's info (``model_sha``, ``model_num_parameters``).
    tests/eval/test_evaluate.py checks the result equals simple_evaluate's.

    `models` (a dict the caller keeps) holds the last model built, and a call with the same
    model arguments reuses it: one checkpoint evaluated with several shot counts is loaded
    once (a 12B checkpoint is ~24 GB to read). Loglikelihood scoring draws no random numbers,
    and the seeds are set as before, so the results are those of a fresh model."""
    import random

    import numpy as np
    from lm_eval.api.registry import get_model
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED
    from lm_eval.evaluator import evaluate
    from lm_eval.utils import set_torch_seed

    random.seed(DEFAULT_RANDOM_SEED)
    np.random.seed(DEFAULT_OTHER_SEED)
    set_torch_seed(DEFAULT_OTHER_SEED)
    key = json.dumps([model_args, batch_size, device], sort_keys=True, default=str)
    lm = (models or {}).get(key)
    if lm is None:
        lm = get_model("hf").create_from_arg_obj(
            model_args, {"batch_size": batch_size, "max_batch_size": None, "device": device}
        )
        if models is not None:
            models.clear()  # one model in memory at a time
            models[key] = lm
    loaded = task_manager.load(tasks)
    for task in loaded["tasks"].values():
        # simple_evaluate's override: a task whose YAML says 0 shots keeps 0
        if task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=num_fewshot)
        task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
    res = evaluate(
        lm=lm,
        task_dict=loaded,
        limit=limit,
        bootstrap_iters=bootstrap_iters,
        log_samples=log_samples,
        fewshot_as_multiturn=True,  # simple_evaluate's default, passed on (no chat template)
        verbosity=None,
    )
    res["config"] = lm.get_model_info()
    return res


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
    models: dict | None = None,
) -> dict[str, Any]:
    """Run lm-eval (what ``simple_evaluate`` runs) with the ``hf`` model on `model_path`
    (`models`: a model cache kept across calls, see _simple_evaluate).

    `model_path` is a checkpoint directory, or a Hub repo id (then `revision`, e.g. ``step1000``,
    selects the checkpoint; it is refused for a directory, where lm-eval would silently ignore it).
    Only the task YAMLs in `tasks_dir` are indexed (no built-in tasks). Returns a JSON-serialisable
    dict: {results: {task: {metric: value}}, versions, n_samples, config, checkpoint}, and with
    `log_samples` {samples: {task: [{doc, filtered_resps, <metric>: value}]}} (per-document
    scores, e.g. accuracy per operand for the term-frequency study).
    """
    from lm_eval import __version__ as lm_eval_version

    if tasks_dir is not None:
        tasks_dir = Path(tasks_dir)
        if not tasks_dir.is_dir():
            raise FileNotFoundError(f"lm-eval tasks directory {tasks_dir} does not exist")
    pretrained = _pretrained(model_path, revision)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    task_manager = _task_index(tasks, tasks_dir)
    model_args: dict[str, Any] = {"pretrained": pretrained, "dtype": "float32"}
    if revision is not None:
        model_args["revision"] = revision
    started = time.perf_counter()
    # DISABLE_MULTIPROC: bootstrap stderr in-process, no worker pool inside a pipeline job.
    # datasets_quiet: no S3 download-count ping, the same dataset cache keys as the prefetch.
    with _env(DISABLE_MULTIPROC="1"), datasets_quiet():
        res = _simple_evaluate(
            model_args=model_args,
            tasks=tasks,
            task_manager=task_manager,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            device=device,
            limit=limit,
            bootstrap_iters=bootstrap_iters,
            log_samples=log_samples,
            models=models,
        )
    seconds = time.perf_counter() - started
    return {
        **({"samples": _samples(res)} if log_samples else {}),
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
        "checkpoint": _provenance(model_path),
        "seconds": round(seconds, 3),
    }


def evaluate_checkpoints(
    model_paths: Sequence[str | os.PathLike],
    out_paths: Sequence[str | os.PathLike],
    producer: str | None = None,
    num_fewshot: int | Sequence[int] = 0,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Evaluate several checkpoints in one process (`num_fewshot`: for all, or one per
    checkpoint; a checkpoint may be listed once per shot count), writing each result
    (atomically) as soon as it is done: the imports, lm-eval's task index and the task data are
    loaded once, which dominates the cost of small models (bench/eval.py)."""
    if len(model_paths) != len(out_paths):
        raise ValueError(f"{len(model_paths)} checkpoints but {len(out_paths)} output paths")
    shots = [num_fewshot] * len(model_paths) if isinstance(num_fewshot, int) else num_fewshot
    if len(shots) != len(model_paths):
        raise ValueError(f"{len(model_paths)} checkpoints but {len(shots)} shot counts")
    results = []
    models: dict = {}  # a checkpoint listed once per shot count is loaded once
    for model_path, k, out_path in zip(model_paths, shots, out_paths, strict=True):
        result = evaluate_checkpoint(model_path, num_fewshot=k, models=models, **kwargs)
        # with its own sha256 and the rule that rebuilds it: the tables refuse a changed file
        result["producer"] = producer
        write_checked_json(out_path, result)
        results.append(result)
    return results
