"""Near-duplicate removal at Jaccard 0.87 (MinHashLSH, as for the deduped Pile), in one process:
the chain of the per-shard jobs (tests, small corpora), and the in-memory MinHashLSH it equals.

The paper gives only the method and threshold (MinHashLSH, 0.87). The rest are our choices,
recorded in the stats: `num_perm` permutations (datasketch's default 128), word `shingle_size`-
grams of the lower-cased, whitespace-normalised text, datasketch's optimal band split (7 bands
of 18 rows for 0.87 and 128). Documents are visited in corpus order and the first member of a
cluster is the one kept, so the result is a pure function of the input.

At the Pile's size the work is three stages of Snakemake jobs, each in bounded memory:
signatures per corpus shard (`dedup_signatures`) -> pairs per range of bands
(`dedup_buckets`) -> one pass over the pairs (`dedup_clusters`). `minhash_lsh` is the reference
they reproduce exactly; it holds every kept document in a datasketch index (~3.5 KB each,
~690 GiB for the Pile's 210.6M documents).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasketch import MinHashLSH

from workflow.data.dedup_buckets import band_groups, bucket_pairs
from workflow.data.dedup_clusters import write_clusters
from workflow.data.dedup_signatures import Permutations, load_signature_shards, signature_shard
from workflow.data.shards import corpus_shards


@dataclass
class DedupResult:
    kept_ids: list[int]  # sorted document indices, the order of the tokenized documents
    clusters: list[list[int]]  # near-duplicate groups (size >= 2); the first id is kept
    stats: dict = field(default_factory=dict)


def minhash_lsh(signature_paths, *, threshold: float, **_) -> DedupResult:
    """The reference: one datasketch MinHashLSH over the shards' signatures, in document order.
    Keeps the first document of every near-duplicate group (estimated Jaccard >= threshold)."""
    sigs = load_signature_shards(signature_paths)
    num_perm, seed = sigs.params["num_perm"], sigs.params["seed"]
    perms = Permutations(num_perm, seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[int, np.ndarray] = {}
    cluster_of: dict[int, list[int]] = {}  # kept id -> its cluster (kept id first)
    rows = (row for k in range(len(sigs.paths)) for row in sigs.signatures(k))
    for doc_id, row in enumerate(rows):
        sig = np.asarray(row, dtype=perms.dtype)
        m = perms.minhash(sig)
        best, best_j = None, -1.0
        # LSH candidates are unordered; sorting makes ties go to the earliest document.
        for cand in sorted(lsh.query(m)):
            j = float(np.mean(kept[cand] == sig))
            if j >= threshold and j > best_j:
                best, best_j = cand, j
        if best is None:
            kept[doc_id] = sig
            lsh.insert(doc_id, m)
        else:
            cluster_of.setdefault(best, [best]).append(doc_id)
    clusters = [cluster_of[k] for k in sorted(cluster_of)]
    return DedupResult(kept_ids=sorted(kept), clusters=clusters)


def read_dedup_outputs(out_dir: str | os.PathLike) -> DedupResult:
    """The cluster job's outputs as a DedupResult."""
    out_dir = Path(out_dir)
    lines = (out_dir / "clusters.jsonl").read_text().splitlines()
    return DedupResult(
        kept_ids=np.load(out_dir / "kept_ids.npy").tolist(),
        clusters=[json.loads(line) for line in lines],
        stats=json.loads((out_dir / "dedup_stats.json").read_text()),
    )


def deduplicate(
    jsonl_path: str | os.PathLike,
    *,
    threshold: float,
    num_perm: int,
    shingle_size: int,
    seed: int,
    shards: int = 1,
    bands_per_job: int = 1,
    work_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
) -> DedupResult:
    """The dedup jobs in one process: signatures of `shards` byte ranges, one bucket job per
    `bands_per_job` bands, the clusters (written to `out_dir` when given). Document ids count
    the documents `read_jsonl` yields (empty texts skipped), the numbering `tokenize_documents`
    gives the entries of its MMapIndexedDataset."""
    params = dict(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size, seed=seed)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        sig_paths = [tmp / f"part{s.index}.npy" for s in corpus_shards([jsonl_path], shards)]
        for s, p in zip(corpus_shards([jsonl_path], shards), sig_paths, strict=True):
            signature_shard(s, p, **params)
        bands = load_signature_shards(sig_paths).params["bands"]
        pair_paths = [tmp / f"group{g}.npy" for g in range(len(band_groups(bands, bands_per_job)))]
        for g, p in enumerate(pair_paths):
            bucket_pairs(sig_paths, g, p, bands_per_job=bands_per_job)
        out = Path(out_dir) if out_dir is not None else tmp / "out"
        write_clusters(sig_paths, pair_paths, out)
        return read_dedup_outputs(out)
