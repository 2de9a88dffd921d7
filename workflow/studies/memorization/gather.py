"""One checkpoint's memorization (rule memorization_gather): its shards' scores joined in
training order, and what Fig. 3 and the memorization table need from them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from workflow.studies.memorization.plan import MemorizationError
from workflow.studies.memorization.planted import (
    passage_ngrams,
    planted_comparison,
    planted_coverage,
    planted_groups,
)
from workflow.studies.memorization.poisson import order_analysis


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


def analyse_checkpoint(
    table,
    block_size: int,
    prompt_tokens: int,
    continuation_tokens: int,
    samples_prefix: str | os.PathLike | None = None,
    passages: Sequence[str] | None = None,
    tokenizer_path: str | os.PathLike | None = None,
) -> dict:
    """Everything Fig. 3 and the memorization table need from one checkpoint's (index, score)
    table: totals, the block counts with their Poisson fit and test, and (when the planted
    passages are known) memorization of the samples that hold one against the rest."""
    scores = table["score"].to_numpy()
    out = {
        "samples": len(scores),
        "memorized": int((scores == 1.0).sum()),
        "memorized_rate": float((scores == 1.0).mean()) if len(scores) else math.nan,
        "mean_score": float(scores.mean()) if len(scores) else math.nan,
        "prompt_tokens": prompt_tokens,
        "continuation_tokens": continuation_tokens,
        **order_analysis(scores, block_size),
    }
    if passages:
        from tokenizers import Tokenizer

        from workflow.data.indexed_dataset import MMapIndexedDataset

        ds = MMapIndexedDataset(samples_prefix)
        index = table["index"].to_numpy()
        width = prompt_tokens + continuation_tokens
        rows = np.stack([ds.get(int(i), 0, width) for i in index]) if len(index) else None
        grams = passage_ngrams(passages, Tokenizer.from_file(str(tokenizer_path)))
        groups = planted_groups(planted_coverage(rows, grams), prompt_tokens, continuation_tokens)
        out["planted"] = planted_comparison(scores, groups)
    return out
