"""Near-duplicate clusters from the bucket jobs' pairs (rule `dedup_clusters`): the kept and
dropped document ids, exactly those of one in-memory MinHashLSH over the corpus.

`dedup.minhash_lsh` visits documents in order and inserts only the documents it keeps: a
document is dropped when a kept, earlier one shares a bucket with it and agrees with it on at
least the threshold; it joins the cluster of the best such one (most equal values, then the
earliest). Here the same rule runs over the pairs alone, sorted by document: a pair's earlier
document is final by then, so one pass decides every document that has a pair; every other
document is kept. Not union-find: components would join A and C through B when A~B and B~C
but not A~C, where MinHashLSH keeps C (B, dropped, is not in its index).

Memory is one window of pairs, the dropped ids (8 bytes each) and the clusters (16 bytes a
dropped document): it grows with the duplicates, not with the corpus.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, write_json
from workflow.data.dedup_buckets import PAIR_DTYPE, unique_pairs

log = logging.getLogger(__name__)

WINDOW_PAIRS = 1 << 23  # pairs decided per window (~150 MB of arrays and lists)
_KEPT_CHUNK = 1 << 24
SETTINGS = ("threshold", "num_perm", "shingle_size", "seed", "num_shards", "bands", "rows")


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
                f"with {', '.join(f'{k}={first[k]}' for k in differ)}: rebuild them with one setting"
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
    return unique_pairs(np.concatenate(parts) if parts else np.empty(0, PAIR_DTYPE))


def _decide(pairs: np.ndarray, lo: int, dropped_before: np.ndarray) -> list[tuple[int, int]]:
    """(kept best, dropped doc) for the documents of one window's pairs, in document order."""
    other = pairs["other"]
    earlier = other < lo  # decided in an earlier window: look it up at once
    gone = np.zeros(len(pairs), bool)
    if len(dropped_before):
        pos = np.searchsorted(dropped_before, other[earlier])
        pos = np.minimum(pos, len(dropped_before) - 1)
        gone[earlier] = dropped_before[pos] == other[earlier]
    dropped_here: set[int] = set()
    found: list[tuple[int, int]] = []
    docs, others, agrees, gones = (x.tolist() for x in (pairs["doc"], other, pairs["agree"], gone))
    i, n = 0, len(docs)
    while i < n:
        doc, best, best_agree = docs[i], -1, -1
        while i < n and docs[i] == doc:  # others ascending: a tie stays with the earliest
            o = others[i]
            kept = not gones[i] if o < lo else o not in dropped_here
            if kept and agrees[i] > best_agree:
                best, best_agree = o, agrees[i]
            i += 1
        if best >= 0:
            dropped_here.add(doc)
            found.append((best, doc))
    return found


def cluster_pairs(pair_paths, window_pairs: int = WINDOW_PAIRS) -> tuple[np.ndarray, dict]:
    """(assignments, meta): one row (kept best, dropped doc) per dropped document, sorted by
    (best, doc); the pairs are read window by window of documents."""
    paths, metas = load_pair_groups(pair_paths)
    documents = metas[0]["documents"]
    total = sum(m["pairs"] for m in metas)
    windows = max(1, math.ceil(total / window_pairs))
    bounds = [documents * w // windows for w in range(windows + 1)]
    dropped = np.empty(0, np.int64)
    found: list[np.ndarray] = []
    unique = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        pairs = _window_pairs(paths, lo, hi)
        unique += len(pairs)
        assigned = np.array(_decide(pairs, lo, dropped), np.int64).reshape(-1, 2)
        dropped = np.concatenate((dropped, assigned[:, 1]))  # docs ascending: stays sorted
        found.append(assigned)
        log.info("documents [%d, %d): %d pairs, %d dropped", lo, hi, len(pairs), len(assigned))
    assigned = np.concatenate(found)
    assigned = assigned[np.lexsort((assigned[:, 1], assigned[:, 0]))]
    return assigned, {**metas[0], "pairs": unique, "windows": windows}


def _write_kept(path: Path, documents: int, dropped: np.ndarray) -> None:
    """kept_ids.npy (int64, every id not dropped), as np.save writes it, chunk by chunk."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header = {"descr": "<i8", "fortran_order": False, "shape": (documents - len(dropped),)}
        np.lib.format.write_array_header_1_0(f, header)
        for a in range(0, documents, _KEPT_CHUNK):
            b = min(a + _KEPT_CHUNK, documents)
            ids = np.arange(a, b, dtype=np.int64)
            mask = np.ones(b - a, bool)
            lo, hi = np.searchsorted(dropped, [a, b])
            mask[dropped[lo:hi] - a] = False
            f.write(ids[mask].tobytes())


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


def write_clusters(pair_paths, out_dir: str | os.PathLike, **kwargs) -> dict:
    """The cluster job: kept_ids.npy, dropped_ids.npy, clusters.jsonl and dedup_stats.json."""
    out_dir = Path(out_dir)
    assigned, meta = cluster_pairs(pair_paths, **kwargs)
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
        **{k: meta[k] for k in ("bands", "rows", "agree_min", "pairs")},
        "band_groups": meta["groups"],
    }
    write_json(out_dir / "dedup_stats.json", stats)
    return stats
