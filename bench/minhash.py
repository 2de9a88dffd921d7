"""MinHash signatures/s: vectorised `minhash_signatures` vs datasketch's per-shingle update."""

from __future__ import annotations

import random

import numpy as np
from datasketch import MinHash

from bench.common import Result, timed
from workflow.data.dedup_signatures import minhash_signatures, shingles

NUM_PERM, SHINGLE, SEED = 128, 5, 1


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)] + ["Ünïcode", "東京", "naïve"]
    return [" ".join(rng.choices(vocab, k=rng.randint(20, 400))) for _ in range(n)]


def baseline_signatures(texts: list[str]) -> np.ndarray:
    """The straightforward loop: one MinHash per document, `update` per shingle."""
    template = MinHash(num_perm=NUM_PERM, seed=SEED)
    rows = []
    for text in texts:
        m = MinHash(
            num_perm=NUM_PERM,
            seed=SEED,
            permutations=template.permutations,  # drawn once, as a fair baseline
            scheme=template.scheme,
        )
        for s in shingles(text, SHINGLE):
            m.update(s)
        rows.append(m.hashvalues.astype(np.uint64))
    return np.stack(rows)


def run(num_docs: int) -> Result:
    texts = make_texts(num_docs)
    ours, t_ours = timed(minhash_signatures, texts, NUM_PERM, SHINGLE, SEED)
    base, t_base = timed(baseline_signatures, texts)
    identical = bool(np.array_equal(ours, base))
    ratio = t_base / t_ours
    return Result(
        name=f"MinHash signatures ({num_docs} docs, {NUM_PERM} perms)",
        ours=f"{num_docs / t_ours:,.0f} docs/s",
        baseline=f"{num_docs / t_base:,.0f} docs/s",
        ratio=ratio,
        target=">= 5x, identical",
        passed=identical and ratio >= 5,
        note="" if identical else "signatures DIFFER from datasketch",
    )
