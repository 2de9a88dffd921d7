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

import math
import os
from collections.abc import Sequence

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
    write_table(table, out_path)
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
