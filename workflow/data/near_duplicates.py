"""Planted near-duplicate clusters: the ground truth the dedup stage (MinHashLSH) must find.

A cluster is one document and its copies, each with ~edit_rate of its words edited; the corpus
records the cluster id in `meta.cluster`.
"""

from __future__ import annotations

import random

# Every pair inside a planted cluster keeps at least this word-5-gram Jaccard similarity: well
# above the 0.87 dedup threshold, so the 128-permutation MinHash estimate (std ~0.02 here)
# cannot fall below the threshold and the ground truth stays unambiguous.
CLUSTER_MIN_JACCARD = 0.95
# fmt: off
# Words a near-duplicate copy may substitute in (typos, small rewrites).
FILLER = [
    "very", "old", "small", "big", "new", "good", "long", "the", "a", "then", "also",
    "still", "often", "later", "some",
]
# fmt: on


def _shingles(words: list[str], k: int = 5) -> set[tuple[str, ...]]:
    if len(words) < k:
        return {tuple(words)}
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(rng: random.Random, text: str, copies: int, edit_rate: float) -> list[str]:
    """`copies` variants of `text` (the first is `text`): each edits ~edit_rate of its words.

    An edit substitutes a word, unless that would bring the copy's word-5-gram Jaccard with
    any member below CLUSTER_MIN_JACCARD (one interior substitution alters 5 shingles, which
    a short document cannot afford); then it changes the word's case instead, as re-formatted
    copies of a web page do, which the lower-cased shingles do not see. Copies are therefore
    never byte-identical once edited, yet always well above the dedup threshold.
    """
    lines = [line.split(" ") for line in text.split("\n")]
    member_shingles = [_shingles(text.lower().split())]
    members = [text]
    for _ in range(copies - 1):
        words = [line[:] for line in lines]
        positions = [(i, j) for i, line in enumerate(words) for j in range(len(line))]
        n_edits = sum(rng.random() < edit_rate for _ in positions)
        for _ in range(n_edits):
            i, j = rng.choice(positions)
            trial = [line[:] for line in words]
            trial[i][j] = rng.choice(FILLER)
            sh = _shingles(" ".join(" ".join(line) for line in trial).lower().split())
            if all(_jaccard(sh, m) >= CLUSTER_MIN_JACCARD for m in member_shingles):
                words = trial
            else:
                word = words[i][j]
                words[i][j] = word.upper() if word != word.upper() else word.lower()
        current = "\n".join(" ".join(line) for line in words)
        members.append(current)
        member_shingles.append(_shingles(current.lower().split()))
    return members
