"""(k, l)-memorization of training samples (paper §3.2, Carlini et al. 2021): scoring (rule
memorization_scores).

Every sample a checkpoint has trained on is prompted with its first k tokens and decoded greedily
for l tokens; its score is the fraction of those l tokens equal to the sample's tokens k..k+l-1,
and "memorized" means score 1. The paper uses k = l = 32 on the first 64 tokens of each 2049-token
sample (`predictable-memorization/eval_memorization.py`: greedy `generate` with
min_length = max_length = 64, so the end-of-text token is never produced).

The rows a checkpoint has seen are scored in shards (workflow.studies.memorization.plan), one
job each, with batched greedy decoding over a KV cache (`greedy_decode`): one forward pass over
all prompts of a batch, then one single-token pass per generated token for the whole batch.
That is what makes all 146M samples of a Pythia checkpoint tractable, where a `generate` call
per sequence is not (bench/memorization.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workflow.core.tables import write_table
from workflow.data.indexed_dataset import MMapIndexedDataset
from workflow.eval.evaluate import check_checkpoint
from workflow.studies.memorization.plan import (
    PAPER_K,
    PAPER_L,
    MemorizationSpec,
    check_probe,
    check_step,
)


def greedy_decode(model, prompts, new_tokens: int, suppress_token: int | None = None):
    """Greedy continuations of equal-length `prompts` (a (n, k) LongTensor), (n, new_tokens).

    One forward pass over the prompts fills the KV cache; each further token is one
    single-position pass for the whole batch. `suppress_token` (the end-of-text id) is never
    chosen, as `generate(min_length=k + l)` in the paper's evaluation. Only the last position's
    logits are computed (`logits_to_keep=1`), as `generate` does. The cache is transformers'
    `StaticCache`, allocated once for k + l positions and written in place: the default dynamic
    cache concatenates every layer's keys and values at every token, which made these small
    models' decoding twice as slow on CPU (issue 18); the continuations are the same.
    """
    import torch
    from transformers import StaticCache

    n, k = prompts.shape
    cache = StaticCache(config=model.config, max_cache_len=k + new_tokens)
    with torch.inference_mode():
        out = model(
            input_ids=prompts,
            past_key_values=cache,
            use_cache=True,
            cache_position=torch.arange(k, device=prompts.device),
            logits_to_keep=1,
        )
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
                    past_key_values=cache,
                    use_cache=True,
                    cache_position=torch.tensor([k + i], device=prompts.device),
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

    check_checkpoint(checkpoint)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch_dtype)
    model.config.use_cache = True
    return model.to(device).eval()


def scoring_devices(gpus: int = 1) -> list[str]:
    """Where a shard job scores: up to `gpus` visible CUDA devices (one process each), else
    the CPU."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(max(1, min(gpus, torch.cuda.device_count())))]
    return ["cpu"]


def score_shard(
    checkpoint: str | os.PathLike,
    samples_prefix: str | os.PathLike,
    spec: MemorizationSpec,
    part: int,
    schedule: Sequence[int],
    out_path: str | os.PathLike,
    batch_size: int = 256,
    suppress_eod: bool = True,
    devices: Sequence[str] | None = None,
    dtype: str = "auto",
    log=None,
) -> dict:
    """Score shard `part` of a checkpoint's seen samples; write parquet (index, score).

    All checks (probe fits the rows, step scheduled and within the data, shard exists,
    checkpoint loadable) run before the model is loaded. With several `devices` (the GPUs of
    a node: memorization.gpus_per_job) each scores a contiguous slice of the shard in its own
    process, as Pythia's runs gave each MPI rank a slice; the scores are the slices' in order.
    """
    import pandas as pd

    ds = MMapIndexedDataset(samples_prefix)
    row_length = int(ds.sizes[0]) if len(ds) else 0
    check_probe(spec.prompt_tokens, spec.continuation_tokens, row_length, str(ds.bin_path))
    check_step(spec, schedule, len(ds), str(ds.bin_path))
    rows_idx = spec.shard_rows(part)
    check_checkpoint(checkpoint)
    devices = list(devices or scoring_devices())
    slices = [s for s in np.array_split(np.arange(len(rows_idx)), len(devices)) if len(s)]
    jobs = [
        _Slice(
            str(checkpoint),
            str(samples_prefix),
            int(rows_idx[s[0]]),
            len(s),
            spec,
            batch_size,
            suppress_eod,
            device,
            dtype,
            f"memorization step{spec.step} part{part}",
        )
        for s, device in zip(slices, devices, strict=False)
    ]
    if len(jobs) > 1:
        scores = np.concatenate(_score_in_processes(jobs))
    else:
        scores = _score_slice(jobs[0]) if jobs else np.empty(0, dtype=np.float32)
    table = pd.DataFrame({"index": rows_idx, "score": scores})
    write_table(table, out_path)
    summary = {
        "samples": len(table),
        "memorized": int((table["score"] == 1.0).sum()),
        "mean_score": float(table["score"].mean()) if len(table) else math.nan,
    }
    if log is not None:
        log.info("%s: %s (%d process(es): %s)", out_path, summary, len(jobs), devices[: len(jobs)])
    return summary


@dataclass(frozen=True)
class _Slice:
    """Rows [first, first + count·stride) by stride of a shard, scored on one device."""

    checkpoint: str
    samples_prefix: str
    first: int
    count: int
    spec: MemorizationSpec
    batch_size: int
    suppress_eod: bool
    device: str
    dtype: str
    desc: str
    threads: int | None = None


def _score_slice(job: _Slice) -> np.ndarray:
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    spec = job.spec
    width = spec.prompt_tokens + spec.continuation_tokens
    # a view of the memory-mapped file: each batch reads only its rows' first k + l tokens
    last = job.first + (job.count - 1) * spec.stride + 1
    rows = MMapIndexedDataset(job.samples_prefix).get_rows(job.first, last)[:: spec.stride, :width]
    model = load_model(job.checkpoint, job.device, job.dtype)
    eod = model.config.eos_token_id if job.suppress_eod else None
    bar = _progress(len(rows), job.desc)
    scores = memorization_scores(
        model,
        rows,
        spec.prompt_tokens,
        spec.continuation_tokens,
        job.batch_size,
        eod,
        job.device,
        bar.update if bar else None,
    )
    if bar:
        bar.close()
    return scores


def _score_in_processes(jobs: list[_Slice]) -> list[np.ndarray]:
    """Each slice in a spawned process of its own (CUDA cannot be forked), the CPU's threads
    shared out among them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = max(1, torch.get_num_threads() // len(jobs))
    jobs = [dataclasses.replace(j, threads=threads) for j in jobs]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx) as pool:
        return list(pool.map(_score_slice, jobs))


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="seq", mininterval=10)
