"""Near-duplicate clusters (rule `dedup_clusters`): MinHashLSH replayed over the bucket jobs'
candidate pairs; the kept and dropped ids are exactly one in-memory MinHashLSH's.

`dedup.minhash_lsh` visits documents in order and inserts only those it keeps: a document is
dropped when a kept, earlier one shares a bucket with it and agrees with it on at least the
threshold (`agree_min` of the hash values); it joins the cluster of the best such one (most
equal values, then the earliest). Here the same visit runs over the documents that have
candidate pairs (doc, head, band) only, in document order: a bucket is named by its band and
its first document (the head), its kept members are recorded as they are decided, and the
agreement is counted on the two signatures. Every other document is kept. The work is
MinHashLSH's own (a document is compared with the kept members of its buckets), so a family of
thousands of near-copies costs thousands of comparisons, not millions.

Not union-find: connected components would join A and C through B when A~B and B~C but not
A~C, where MinHashLSH keeps C (B, dropped, is not in its index).

Memory: one window of pairs and their signatures, one slot per bucket (16 bytes), the dropped
ids and clusters (24 bytes each): it grows with the documents that have a duplicate candidate,
not with the corpus.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, write_json
from workflow.data.dedup_buckets import PAIR_DTYPE, read_rows, sort_pairs
from workflow.data.dedup_signatures import SignatureShards, load_signature_shards

log = logging.getLogger(__name__)

WINDOW_PAIRS = 1 << 18  # candidate pairs decided per window (~300 bytes each with lists)
_KEPT_CHUNK = 1 << 24
SETTINGS = ("threshold", "num_perm", "shingle_size", "seed", "num_shards", "bands", "rows")


def agree_min(threshold: float, num_perm: int) -> int:
    """The fewest equal hash values whose share passes `threshold`, computed as `dedup`
    compares them (the mean of the equal values, in float64): 112 of 128 for 0.87."""
    return next(c for c in range(num_perm + 1) if c / num_perm >= threshold)


def load_pair_groups(pair_paths) -> tuple[list[Path], list[dict]]:
    """The bucket jobs' pair files, checked: every band group once, in order, one setting."""
    paths = [Path(p) for p in pair_paths]
    if not paths:
        raise ValueError("no bucket pair files given")
    metas = []
    for g, p in enumerate(paths):
        meta_path = p.with_suffix(".json")
        if not p.is_file() or not meta_path.is_file():
            raise FileNotFoundError(f"{p}: no such bucket pair file (or its {meta_path.name})")
        meta = json.loads(meta_path.read_text())
        if meta["group"] != g:
            raise ValueError(f"{p}: is band group {meta['group']}, expected group {g} here")
        first = metas[0] if metas else meta
        mine = {k: meta[k] for k in (*SETTINGS, "documents", "groups")}
        if differ := [k for k in mine if mine[k] != first[k]]:
            raise ValueError(
                f"{p}: made with {', '.join(f'{k}={mine[k]}' for k in differ)}, the first group "
                f"with {', '.join(f'{k}={first[k]}' for k in differ)}: rebuild them alike"
            )
        if metas and meta["band_range"][0] != metas[-1]["band_range"][1]:
            raise ValueError(f"{p}: bands {meta['band_range']} do not follow the previous group")
        metas.append(meta)
    if len(paths) != metas[0]["groups"] or metas[-1]["band_range"][1] != metas[0]["bands"]:
        raise ValueError(
            f"{len(paths)} band groups given, the bands were split into {metas[0]['groups']}"
        )
    return paths, metas


def _window_pairs(paths, lo: int, hi: int) -> np.ndarray:
    parts = []
    for p in paths:
        pairs = np.load(p, mmap_mode="r")
        a, b = np.searchsorted(pairs["doc"], [lo, hi], side="left")
        parts.append(np.array(pairs[a:b]))  # a copy: the mapping is dropped with `pairs`
    return sort_pairs(np.concatenate(parts) if parts else np.empty(0, PAIR_DTYPE))


class Buckets:
    """The kept members of every bucket, in the order they were kept: a slot per bucket (band,
    head), found by binary search; most buckets keep one document, the rest go to `more`."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys  # sorted head * 65536 + band of every bucket
        self.first = np.full(len(keys), -1, np.int64)
        self.more: dict[int, list[int]] = {}

    def slots(self, pairs: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, pairs["head"] * 65536 + pairs["band"])

    def kept(self, slot: int) -> list[int]:
        first = int(self.first[slot])
        return [] if first < 0 else [first, *self.more.get(slot, ())]

    def keep(self, slot: int, doc: int) -> None:
        if self.first[slot] < 0:
            self.first[slot] = doc
        else:
            self.more.setdefault(slot, []).append(doc)


def _bucket_keys(paths, windows: list[tuple[int, int]]) -> Buckets:
    """Every bucket's key, from its head's own pair (doc == head), read window by window."""
    keys = []
    for lo, hi in windows:
        pairs = _window_pairs(paths, lo, hi)
        heads = pairs[pairs["doc"] == pairs["head"]]
        keys.append(heads["head"] * 65536 + heads["band"])
    return Buckets(np.sort(np.concatenate(keys)) if keys else np.empty(0, np.int64))


def _decide(pairs, buckets: Buckets, sigs: SignatureShards, need: int) -> list[tuple[int, int]]:
    """(kept best, dropped doc) for the documents of one window's pairs, in document order;
    the documents kept are recorded in their buckets."""
    slots = buckets.slots(pairs).tolist()
    docs, heads = pairs["doc"].tolist(), pairs["head"].tolist()
    window = np.unique(pairs["doc"])
    rows = read_rows(sigs, window)  # the window's own signatures, in one read
    row_of = dict(zip(window.tolist(), rows, strict=True))
    found: list[tuple[int, int]] = []
    i, n = 0, len(docs)
    while i < n:
        doc, j = docs[i], i
        candidates: set[int] = set()
        while j < n and docs[j] == doc:
            if heads[j] != doc:  # the head of a bucket has no earlier member in it
                candidates.update(buckets.kept(slots[j]))
            j += 1
        best = -1
        if candidates:
            ordered = sorted(candidates)  # ties go to the earliest, as sorted(lsh.query())
            others = np.stack([row_of[c] if c in row_of else sigs.row(c) for c in ordered])
            agree = (others == row_of[doc]).sum(axis=1)
            top = int(np.argmax(agree))  # the first of the most equal values
            if agree[top] >= need:
                best = ordered[top]
                found.append((best, doc))
        if best < 0:
            for k in range(i, j):
                buckets.keep(slots[k], doc)
        i = j
    return found


def cluster_pairs(
    signature_paths, pair_paths, window_pairs: int = WINDOW_PAIRS
) -> tuple[np.ndarray, dict]:
    """(assignments, meta): one row (kept best, dropped doc) per dropped document, sorted by
    (best, doc); the pairs are read window by window of documents."""
    paths, metas = load_pair_groups(pair_paths)
    sigs = load_signature_shards(signature_paths)
    meta = metas[0]
    if (sigs.documents, sigs.params) != (meta["documents"], {k: meta[k] for k in sigs.params}):
        raise ValueError(
            f"{paths[0]}: made from other signatures than {sigs.paths[0]} and the rest "
            f"({meta['documents']} documents, not {sigs.documents}): rebuild the buckets"
        )
    total = sum(m["pairs"] for m in metas)
    n_windows = max(1, math.ceil(total / window_pairs))
    bounds = [meta["documents"] * w // n_windows for w in range(n_windows + 1)]
    windows = list(zip(bounds[:-1], bounds[1:], strict=True))
    buckets = _bucket_keys(paths, windows)
    need = agree_min(meta["threshold"], meta["num_perm"])
    found: list[np.ndarray] = []
    try:
        for lo, hi in windows:
            pairs = _window_pairs(paths, lo, hi)
            found.append(np.array(_decide(pairs, buckets, sigs, need), np.int64).reshape(-1, 2))
            log.info("documents [%d, %d): %d pairs, %d dropped", lo, hi, len(pairs), len(found[-1]))
    finally:
        sigs.close()
    assigned = np.concatenate(found)
    assigned = assigned[np.lexsort((assigned[:, 1], assigned[:, 0]))]
    stats = {"pairs": total, "buckets": len(buckets.keys), "windows": n_windows, "agree_min": need}
    return assigned, {**meta, **stats, "empty_skipped": sigs.empty_skipped}


def _write_kept(path: Path, documents: int, dropped: np.ndarray) -> None:
    """kept_ids.npy (int64, every id not dropped), as np.save writes it, chunk by chunk."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header = {"descr": "<i8", "fortran_order": False, "shape": (documents - len(dropped),)}
        np.lib.format.write_array_header_1_0(f, header)
        for a in range(0, documents, _KEPT_CHUNK):
            b = min(a + _KEPT_CHUNK, documents)
            mask = np.ones(b - a, bool)
            lo, hi = np.searchsorted(dropped, [a, b])
            mask[dropped[lo:hi] - a] = False
            f.write(np.arange(a, b, dtype=np.int64)[mask].tobytes())


def _write_clusters(path: Path, assigned: np.ndarray) -> int:
    """clusters.jsonl: one JSON list a line, the kept document first, then those it absorbed."""
    clusters = 0
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        if len(assigned):
            edge = np.flatnonzero(np.diff(assigned[:, 0])) + 1
            for chunk in np.split(assigned, edge):
                f.write(json.dumps([int(chunk[0, 0]), *chunk[:, 1].tolist()]) + "\n")
                clusters += 1
    return clusters


def write_clusters(signature_paths, pair_paths, out_dir: str | os.PathLike, **kwargs) -> dict:
    """The cluster job: kept_ids.npy, dropped_ids.npy, clusters.jsonl and dedup_stats.json."""
    out_dir = Path(out_dir)
    assigned, meta = cluster_pairs(signature_paths, pair_paths, **kwargs)
    n = meta["documents"]
    dropped = np.sort(assigned[:, 1])
    _write_kept(out_dir / "kept_ids.npy", n, dropped)
    with atomic_path(out_dir / "dropped_ids.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, dropped)
    stats = {
        "documents_in": n,
        "documents_out": n - len(dropped),
        "duplicate_clusters": _write_clusters(out_dir / "clusters.jsonl", assigned),
        "documents_removed": len(dropped),
        "empty_skipped": meta["empty_skipped"],
        **{k: meta[k] for k in ("threshold", "num_perm", "shingle_size", "seed")},
        "shards": meta["num_shards"],
        **{k: meta[k] for k in ("bands", "rows", "agree_min", "pairs", "buckets")},
        "band_groups": meta["groups"],
    }
    write_json(out_dir / "dedup_stats.json", stats)
    return stats
