"""(k, l)-memorization of training samples (paper §3.2, Carlini et al. 2021): scoring.

Every sample a checkpoint has trained on is prompted with its first k tokens and decoded greedily
for l tokens; its score is the fraction of those l tokens equal to the sample's tokens k..k+l-1,
and "memorized" means score 1. The paper uses k = l = 32 on the first 64 tokens of each 2049-token
sample (`predictable-memorization/eval_memorization.py`: greedy `generate` with
min_length = max_length = 64, so the end-of-text token is never produced).

A step-N checkpoint has trained on rows [0, N*B) of the pre-shuffled sample file (B = global batch
size). Those rows are scored in shards (`memorization_shards`), one job each, with batched greedy
decoding over a KV cache (`greedy_decode`): one forward pass over all prompts of a batch, then one
single-token pass per generated token for the whole batch. That is what makes all 146M samples of
a Pythia checkpoint tractable, where a `generate` call per sequence is not (bench/memorization.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path
from workflow.data.indexed_dataset import MMapIndexedDataset

PAPER_K = PAPER_L = 32


class MemorizationError(ValueError):
    """A memorization job that cannot run as asked; the message names what and where."""


# ------------------------------------------------------------------------------ what is scored


@dataclass(frozen=True)
class MemorizationSpec:
    """What one (variant, size, step) evaluates: which rows, and the (k, l) probe."""

    step: int
    global_batch_size: int
    prompt_tokens: int = PAPER_K  # k
    continuation_tokens: int = PAPER_L  # l
    max_samples: int | None = None  # None = every sample seen; else an even stride over them
    samples_per_job: int = 1 << 23

    @property
    def rows_seen(self) -> int:
        """Rows [0, step*B) of the sample file: what a step-N checkpoint has trained on."""
        return self.step * self.global_batch_size

    @property
    def stride(self) -> int:
        """Every stride-th seen row is scored (1 = all); even spacing keeps blocks of
        consecutive scored samples equal slices of training time."""
        if self.max_samples is None or self.max_samples >= self.rows_seen:
            return 1
        return math.ceil(self.rows_seen / self.max_samples)

    @property
    def num_samples(self) -> int:
        return len(range(0, self.rows_seen, self.stride))

    @property
    def num_jobs(self) -> int:
        return max(1, math.ceil(self.num_samples / self.samples_per_job))

    def shard_rows(self, part: int) -> np.ndarray:
        """The sample-file row indices scored by job `part`."""
        if not 0 <= part < self.num_jobs:
            raise MemorizationError(
                f"step {self.step}: shard {part} does not exist (there are {self.num_jobs})"
            )
        lo = part * self.samples_per_job
        hi = min(lo + self.samples_per_job, self.num_samples)
        return np.arange(lo, hi, dtype=np.int64) * self.stride


@dataclass(frozen=True)
class MemorizationPlan:
    """The `memorization:` section resolved against the suite: what the rules build."""

    steps: tuple[int, ...]
    sizes: tuple[str, ...]
    variants: tuple[str, ...]
    figure_size: str | None
    schedule: tuple[int, ...]
    global_batch_size: int
    options: dict

    @classmethod
    def from_config(cls, config: dict, suite) -> MemorizationPlan:
        mem = config["memorization"]
        sizes = tuple(s for s in suite.models if not mem["sizes"] or s in mem["sizes"])
        variants = tuple(v for v in suite.variants if not mem["variants"] or v in mem["variants"])
        largest = max(sizes, key=lambda s: suite.models[s].non_embedding_params(), default=None)
        return cls(
            steps=tuple(sorted(set(mem["steps"]))),
            sizes=sizes,
            variants=variants,
            figure_size=mem["figure_size"] or largest,
            schedule=tuple(suite.training.schedule),
            global_batch_size=suite.training.global_batch_size,
            options=dict(mem),
        )

    def spec(self, step: int | str) -> MemorizationSpec:
        return MemorizationSpec(
            step=int(step),
            global_batch_size=self.global_batch_size,
            prompt_tokens=self.options["prompt_tokens"],
            continuation_tokens=self.options["continuation_tokens"],
            max_samples=self.options["max_samples"],
            samples_per_job=self.options["samples_per_job"],
        )

    def scheduled(self, step: int | str, what: str) -> int:
        """`step` as an int; a step without a checkpoint (a target asked for by path) is
        refused with the schedule's last step named."""
        if int(step) not in self.schedule:
            raise MemorizationError(
                f"memorization of {what} step {step}: not a checkpoint of the schedule "
                f"(last step {max(self.schedule)})"
            )
        return int(step)


def check_probe(prompt_tokens: int, continuation_tokens: int, row_length: int, where: str) -> None:
    """k + l tokens must fit in one sample row (seq_length + 1 tokens)."""
    if prompt_tokens < 1 or continuation_tokens < 1:
        raise MemorizationError(
            f"{where}: prompt_tokens ({prompt_tokens}) and continuation_tokens "
            f"({continuation_tokens}) must be >= 1"
        )
    if prompt_tokens + continuation_tokens > row_length:
        raise MemorizationError(
            f"{where}: prompt_tokens + continuation_tokens = {prompt_tokens} + "
            f"{continuation_tokens} = {prompt_tokens + continuation_tokens} exceeds the "
            f"{row_length} tokens of a sample (seq_length + 1); lower them (the paper: 32 + 32 "
            "of 2049)"
        )


def check_step(
    spec: MemorizationSpec, schedule: Sequence[int], rows_in_file: int, samples_path: str
) -> None:
    """Refuse, before any work, a step that has no checkpoint or whose rows the file lacks."""
    if spec.step not in schedule:
        near = sorted(schedule, key=lambda s: abs(s - spec.step))[:3]
        raise MemorizationError(
            f"memorization step {spec.step} is not a checkpoint of the schedule "
            f"(nearest: {', '.join(map(str, sorted(near)))}; last: {max(schedule)})"
        )
    if spec.rows_seen > rows_in_file:
        last = rows_in_file // spec.global_batch_size
        raise MemorizationError(
            f"memorization step {spec.step} needs rows [0, {spec.rows_seen}) "
            f"({spec.step} steps x batch {spec.global_batch_size}) but {samples_path} has only "
            f"{rows_in_file} rows (data for steps <= {last}): the step is beyond the data"
        )


def check_config(config: dict) -> list[str]:
    """Problems of the `memorization:` section, each naming its key path (for config.py)."""
    mem = config.get("memorization") or {}
    if not mem.get("steps"):
        return []  # no memorization study
    from workflow.core.config import checkpoint_schedule

    t = config["training"]
    ck = t["checkpoints"]
    schedule = checkpoint_schedule(
        t["train_iters"], ck["every"], ck["log_spaced"], tuple(ck["extra"])
    )
    problems = []
    row = t["seq_length"] + 1
    k, n = mem["prompt_tokens"], mem["continuation_tokens"]
    if k + n > row:
        problems.append(
            f"memorization.prompt_tokens + continuation_tokens = {k} + {n} = {k + n} exceeds the "
            f"{row} tokens of a sample (training.seq_length {t['seq_length']} + 1); the paper "
            "uses 32 + 32 of 2049"
        )
    for s in mem["steps"]:
        if s not in schedule:
            problems.append(
                f"memorization.steps: step {s} is not a checkpoint of the schedule "
                f"(training.checkpoints; last step {t['train_iters']})"
            )
    for name in mem.get("sizes") or []:
        if name not in config["models"]:
            problems.append(
                f"memorization.sizes: {name!r} is not a model of `models` "
                f"({', '.join(config['models'])})"
            )
    for v in mem.get("variants") or []:
        if v not in config["variants"]:
            problems.append(f"memorization.variants: {v!r} is not in variants {config['variants']}")
    fig = mem.get("figure_size")
    if fig is not None and fig not in (mem.get("sizes") or config["models"]):
        problems.append(f"memorization.figure_size: {fig!r} is not a scored model")
    return problems


# ------------------------------------------------------------------------------ decoding


def greedy_decode(model, prompts, new_tokens: int, suppress_token: int | None = None):
    """Greedy continuations of equal-length `prompts` (a (n, k) LongTensor), (n, new_tokens).

    One forward pass over the prompts fills the KV cache; each further token is one
    single-position pass for the whole batch. `suppress_token` (the end-of-text id) is never
    chosen, as `generate(min_length=k + l)` in the paper's evaluation. Only the last position's
    logits are computed (`logits_to_keep=1`), as `generate` does.
    """
    import torch

    with torch.inference_mode():
        out = model(input_ids=prompts, use_cache=True, logits_to_keep=1)
        chosen = []
        for i in range(new_tokens):
            logits = out.logits[:, -1, :]
            if suppress_token is not None:
                logits = logits.clone()
                logits[:, suppress_token] = -math.inf
            token = logits.argmax(dim=-1)
            chosen.append(token)
            if i + 1 < new_tokens:
                out = model(
                    input_ids=token[:, None],
                    past_key_values=out.past_key_values,
                    use_cache=True,
                    logits_to_keep=1,
                )
        return torch.stack(chosen, dim=1)


def memorization_scores(
    model,
    rows: np.ndarray,
    prompt_tokens: int = PAPER_K,
    continuation_tokens: int = PAPER_L,
    batch_size: int = 256,
    suppress_token: int | None = None,
    device: str = "cpu",
    progress=None,
) -> np.ndarray:
    """Score (fraction of the l greedy tokens equal to the sample's) of each row of `rows`."""
    import torch

    k, n = prompt_tokens, continuation_tokens
    check_probe(k, n, rows.shape[1], "memorization_scores")
    scores = np.empty(len(rows), dtype=np.float32)
    for lo in range(0, len(rows), batch_size):
        block = np.asarray(rows[lo : lo + batch_size, : k + n], dtype=np.int64)
        block = torch.from_numpy(block).to(device)
        got = greedy_decode(model, block[:, :k], n, suppress_token)
        scores[lo : lo + len(block)] = (got == block[:, k:]).float().mean(dim=1).cpu().numpy()
        if progress is not None:
            progress(len(block))
    return scores


def load_model(checkpoint: str | os.PathLike, device: str = "cpu", dtype: str = "auto"):
    """The checkpoint's model for inference (eval mode, KV cache on)."""
    import torch
    from transformers import AutoModelForCausalLM

    from workflow.eval.evaluate import check_checkpoint

    check_checkpoint(checkpoint)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch_dtype)
    model.config.use_cache = True
    return model.to(device).eval()


def score_shard(
    checkpoint: str | os.PathLike,
    samples_prefix: str | os.PathLike,
    spec: MemorizationSpec,
    part: int,
    schedule: Sequence[int],
    out_path: str | os.PathLike,
    batch_size: int = 256,
    suppress_eod: bool = True,
    device: str | None = None,
    dtype: str = "auto",
    log=None,
) -> dict:
    """Score shard `part` of a checkpoint's seen samples; write parquet (index, score).

    All checks (probe fits the rows, step scheduled and within the data, shard exists,
    checkpoint loadable) run before the model is loaded.
    """
    import pandas as pd
    import torch

    ds = MMapIndexedDataset(samples_prefix)
    row_length = int(ds.sizes[0]) if len(ds) else 0
    check_probe(spec.prompt_tokens, spec.continuation_tokens, row_length, str(ds.bin_path))
    check_step(spec, schedule, len(ds), str(ds.bin_path))
    rows_idx = spec.shard_rows(part)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(checkpoint, device, dtype)
    eod = model.config.eos_token_id if suppress_eod else None
    width = spec.prompt_tokens + spec.continuation_tokens
    # a view of the memory-mapped file: each batch reads only its rows' first k + l tokens
    rows = (
        ds.get_rows(int(rows_idx[0]), int(rows_idx[-1]) + 1)[:: spec.stride, :width]
        if len(rows_idx)
        else np.empty((0, width), dtype=np.int64)
    )
    bar = _progress(len(rows), f"memorization step{spec.step} part{part}")
    scores = memorization_scores(
        model,
        rows,
        spec.prompt_tokens,
        spec.continuation_tokens,
        batch_size,
        eod,
        device,
        bar.update if bar else None,
    )
    if bar:
        bar.close()
    table = pd.DataFrame({"index": rows_idx, "score": scores})
    write_parquet(table, out_path)
    summary = {
        "samples": len(table),
        "memorized": int((table["score"] == 1.0).sum()),
        "mean_score": float(table["score"].mean()) if len(table) else math.nan,
    }
    if log is not None:
        log.info("%s: %s", out_path, summary)
    return summary


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="seq", mininterval=10)


def write_parquet(table, path: str | os.PathLike) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def gather_shards(paths: Sequence[str | os.PathLike]):
    """The shards' tables in order of sample index (shards are disjoint, ordered ranges)."""
    import pandas as pd

    tables = [pd.read_parquet(p) for p in paths]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    table = table.sort_values("index", kind="stable", ignore_index=True)
    if table["index"].duplicated().any():
        dup = int(table.loc[table["index"].duplicated(), "index"].iloc[0])
        raise MemorizationError(f"sample {dup} is scored by more than one shard of {paths[0]}")
    return table
