"""Near-duplicate removal: MinHashLSH at Jaccard 0.87, as for Pythia's deduped Pile.

The paper gives only the method and threshold (MinHashLSH, 0.87). The rest are our choices,
recorded in the stats: `num_perm` permutations (datasketch's default 128), word `shingle_size`-
grams of the lower-cased, whitespace-normalised text. Documents are visited in file order and
the first member of a cluster is the one kept, so the result is a pure function of the input.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from workflow.corpus import read_jsonl
from workflow.indexed_dataset import IndexedDatasetWriter, MMapIndexedDataset
from workflow.io import atomic_path, write_json


@dataclass
class DedupResult:
    kept_ids: list[int]  # sorted document indices, the order of the tokenized documents
    clusters: list[list[int]]  # near-duplicate groups (size >= 2); the first id is kept
    stats: dict = field(default_factory=dict)


def shingles(text: str, shingle_size: int) -> set[bytes]:
    """Word n-grams of the lower-cased text; a shorter text is one shingle."""
    words = text.lower().split()
    if len(words) <= shingle_size:
        return {" ".join(words).encode("utf-8")}
    return {
        " ".join(words[i : i + shingle_size]).encode("utf-8")
        for i in range(len(words) - shingle_size + 1)
    }


def _minhashes(texts, num_perm: int, shingle_size: int, seed: int):
    # The permutations are drawn once and shared: building them is most of MinHash()'s cost.
    template = MinHash(num_perm=num_perm, seed=seed)
    for text in texts:
        m = MinHash(
            num_perm=num_perm,
            seed=seed,
            permutations=template.permutations,
            scheme=template.scheme,
        )
        m.update_batch(sorted(shingles(text, shingle_size)))
        yield m


def minhash_signatures(texts, num_perm: int, shingle_size: int, seed: int) -> np.ndarray:
    """(n, num_perm) uint64 MinHash signatures, identical to datasketch's `hashvalues`."""
    rows = [m.hashvalues.astype(np.uint64) for m in _minhashes(texts, num_perm, shingle_size, seed)]
    return np.stack(rows) if rows else np.empty((0, num_perm), np.uint64)


def deduplicate(
    jsonl_path: str | os.PathLike, *, threshold: float, num_perm: int, shingle_size: int, seed: int
) -> DedupResult:
    """Keep the first document of every near-duplicate group (estimated Jaccard >= threshold).

    Document ids count the documents `read_jsonl` yields (empty texts skipped), the same
    numbering `tokenize_documents` gives the entries of its MMapIndexedDataset.
    """
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[int, MinHash] = {}
    cluster_of: dict[int, list[int]] = {}  # kept id -> its cluster (kept id first)
    n = 0
    texts = (record["text"] for _, record in read_jsonl(jsonl_path))
    for doc_id, m in enumerate(_minhashes(texts, num_perm, shingle_size, seed)):
        n += 1
        best, best_j = None, -1.0
        # LSH candidates are unordered; sorting makes ties go to the earliest document.
        for cand in sorted(lsh.query(m)):
            j = float(np.mean(kept[cand].hashvalues == m.hashvalues))
            if j >= threshold and j > best_j:
                best, best_j = cand, j
        if best is None:
            kept[doc_id] = m
            lsh.insert(doc_id, m)
        else:
            cluster_of.setdefault(best, [best]).append(doc_id)
    clusters = [cluster_of[k] for k in sorted(cluster_of)]
    kept_ids = sorted(kept)
    return DedupResult(
        kept_ids=kept_ids,
        clusters=clusters,
        stats={
            "documents_in": n,
            "documents_out": len(kept_ids),
            "duplicate_clusters": len(clusters),
            "documents_removed": n - len(kept_ids),
            "threshold": threshold,
            "num_perm": num_perm,
            "shingle_size": shingle_size,
            "seed": seed,
        },
    )


def write_dedup_outputs(result: DedupResult, out_dir: str | os.PathLike) -> None:
    """kept_ids.npy, clusters.jsonl (one JSON list of document ids a line), dedup_stats.json."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "kept_ids.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(result.kept_ids, dtype=np.int64))
    with atomic_path(out_dir / "clusters.jsonl") as tmp, open(tmp, "w") as f:
        for cluster in result.clusters:
            f.write(json.dumps(cluster) + "\n")
    write_json(out_dir / "dedup_stats.json", result.stats)


def select_documents(
    documents_prefix: str | os.PathLike, kept_ids, out_prefix: str | os.PathLike
) -> dict:
    """Copy the kept documents of a tokenized dataset, in order, into `<out_prefix>.bin/.idx`."""
    ds = MMapIndexedDataset(documents_prefix)
    kept = np.asarray(kept_ids, dtype=np.int64)
    if kept.ndim != 1:
        raise ValueError(f"kept_ids must be one-dimensional, got shape {kept.shape}")
    if kept.size and (kept[0] < 0 or kept[-1] >= len(ds) or np.any(np.diff(kept) <= 0)):
        raise ValueError(
            f"kept_ids must be strictly increasing ids in [0, {len(ds)}) of {ds.idx_path}; got "
            f"range [{kept.min()}, {kept.max()}]: was the dedup run on another corpus?"
        )
    with IndexedDatasetWriter(out_prefix, ds.dtype) as writer:
        for i in kept:
            writer.add_document(ds[int(i)])
    tokens_out = int(ds.sizes[kept].astype(np.int64).sum()) if kept.size else 0
    return {
        "documents_in": len(ds),
        "documents_out": int(kept.size),
        "tokens_in": ds.num_tokens,
        "tokens_out": tokens_out,
    }
