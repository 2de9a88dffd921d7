"""Memorization of the planted passages: the generated corpus repeats known passages, so the
samples that hold one can be found in the token rows (`planted_coverage`) and their
memorization rate compared with the rest's."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

# An n-gram of passage tokens this long marks planted text; shorter ones can occur by chance
# in the generated corpus's other documents (the passages share their words with it).
PLANTED_NGRAM = 8


def passage_ngrams(passages: Iterable[str], tokenizer, n: int = PLANTED_NGRAM) -> set[bytes]:
    """Token n-grams of the planted passages, as they are tokenized inside a document (after a
    space) and at its start."""
    grams: set[bytes] = set()
    for text in passages:
        for variant in (text, " " + text):
            ids = np.asarray(tokenizer.encode(variant).ids, dtype=np.int64)
            for i in range(len(ids) - n + 1):
                grams.add(ids[i : i + n].tobytes())
    return grams


def planted_coverage(rows: np.ndarray, grams: set[bytes], n: int = PLANTED_NGRAM) -> np.ndarray:
    """Boolean mask (rows.shape) of the tokens inside an occurrence of a planted passage: every
    token of an n-gram window that matches a passage n-gram."""
    rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
    mask = np.zeros(rows.shape, dtype=bool)
    if rows.shape[1] < n or not grams:
        return mask
    windows = np.lib.stride_tricks.sliding_window_view(rows, n, axis=1)
    flat = np.ascontiguousarray(windows).reshape(-1, n)
    keys = flat.view(np.dtype((np.void, 8 * n))).ravel()
    wanted = np.array(sorted(grams), dtype=np.dtype((np.void, 8 * n)))
    hit = np.isin(keys, wanted).reshape(windows.shape[:2])
    for offset in range(n):
        mask[:, offset : offset + hit.shape[1]] |= hit
    return mask


def planted_groups(coverage: np.ndarray, prompt_tokens: int, continuation_tokens: int):
    """'planted' (the whole continuation is passage text), 'rest' (no passage token in the
    prompt or continuation) or 'partial' per row."""
    k, n = prompt_tokens, continuation_tokens
    cont = coverage[:, k : k + n].all(axis=1)
    none = ~coverage[:, : k + n].any(axis=1)
    return np.where(cont, "planted", np.where(none, "rest", "partial"))


def planted_comparison(scores: np.ndarray, groups: np.ndarray) -> dict:
    """Samples, memorized samples, memorization rate and mean score of each group."""
    out = {}
    for name in ("planted", "partial", "rest"):
        sel = groups == name
        s = np.asarray(scores)[sel]
        out[name] = {
            "samples": int(sel.sum()),
            "memorized": int((s == 1.0).sum()),
            "memorized_rate": float((s == 1.0).mean()) if len(s) else math.nan,
            "mean_score": float(s.mean()) if len(s) else math.nan,
        }
    p, r = out["planted"]["memorized_rate"], out["rest"]["memorized_rate"]
    out["rate_ratio"] = p / r if r and not math.isnan(r) else (math.inf if p else math.nan)
    return out
