"""LSH buckets of a range of bands (rule `dedup_buckets`): the candidate near-duplicate pairs.

MinHashLSH (the paper's dedup, `dedup.minhash_lsh`) splits each signature into `bands` bands of
`rows` values; two documents share a bucket of a band when they agree on all its rows, and a
document's candidates are the kept documents that share a bucket with it in any band. A bucket
job finds the buckets of its bands for every document at once, in bounded memory:

1. one key range (1/passes of the key space) of one band at a time: that slice of every
   shard's sorted band keys (`dedup_signatures.sorted_band_keys`), sorted together; runs of
   equal keys are the candidate buckets;
2. the members' signatures, read by document id: a run splits where the band values differ
   (a 64-bit key collision is not a bucket, as MinHashLSH compares the values);
3. one candidate pair (doc, head, band) per member of a bucket of two or more documents, its
   head being the bucket's first document (the head's own pair names the bucket too): a bucket
   of m documents is m pairs, never m^2/2, as datatrove's bucket stage writes them.

The pairs are sorted by (doc, band); `dedup_clusters` replays MinHashLSH over them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, write_json
from workflow.data.dedup_signatures import SignatureShards, load_signature_shards

log = logging.getLogger(__name__)

PAIR_DTYPE = np.dtype([("doc", "<i8"), ("head", "<i8"), ("band", "<u2")])
PASS_DOCUMENTS = 1 << 20  # band keys sorted at once (~48 bytes each): ~50 MB a pass
BATCH_MEMBERS = 1 << 16  # bucket members whose signatures are read at once


def band_groups(bands: int, bands_per_job: int) -> list[tuple[int, int]]:
    """[lo, hi) band ranges of the bucket jobs: `bands_per_job` bands each, the last fewer."""
    if bands_per_job < 1:
        raise ValueError(f"bands_per_job must be >= 1, got {bands_per_job}")
    return [(lo, min(lo + bands_per_job, bands)) for lo in range(0, bands, bands_per_job)]


def _pass_keys(sigs: SignatureShards, band: int, lo: int, hi: int | None):
    """(keys, global doc ids) of band `band` with key in [lo, hi), every shard's slice of its
    sorted keys; sorted by key, then by document."""
    keys, docs = [], []
    for k in range(len(sigs.paths)):
        row = sigs.band_keys(k)[band]
        a = int(np.searchsorted(row["key"], np.uint64(lo), side="left"))
        b = len(row) if hi is None else int(np.searchsorted(row["key"], np.uint64(hi), "left"))
        part = np.array(row[a:b])  # a copy: the mapping is dropped with `row`
        keys.append(part["key"])
        docs.append(part["doc"].astype(np.int64) + sigs.offsets[k])
    key, doc = np.concatenate(keys), np.concatenate(docs)
    order = np.argsort(key, kind="stable")  # shards in order, rows in order: doc ascending
    return key[order], doc[order]


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of each run of >= 2 equal keys."""
    if len(keys) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    edge = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate(([0], edge))
    lengths = np.diff(np.concatenate((starts, [len(keys)])))
    many = lengths >= 2
    return starts[many], lengths[many]


def _batches(starts, lengths, cap: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Runs grouped so that each group has about `cap` members (a bigger run alone)."""
    first = 0
    total = 0
    for i, n in enumerate(lengths.tolist()):
        if total and total + n > cap:
            yield starts[first:i], lengths[first:i]
            first, total = i, 0
        total += n
    if total:
        yield starts[first:], lengths[first:]


def read_rows(sigs: SignatureShards, docs: np.ndarray) -> np.ndarray:
    """The signatures of global document ids `docs` (ascending), (len(docs), num_perm), by
    positioned reads: a mapping would fault in the pages around every row (the kernel's
    fault-around), and the job's resident size would grow to the files' size."""
    width = 4 * sigs.params["num_perm"]
    data = b"".join(sigs.read(d, width) for d in docs.tolist())
    return np.frombuffer(data, np.uint32).reshape(len(docs), sigs.params["num_perm"])


def _batch_signatures(sigs: SignatureShards, members: np.ndarray) -> np.ndarray:
    order = np.argsort(members, kind="stable")  # read in document order
    out = np.empty((len(members), sigs.params["num_perm"]), np.uint32)
    out[order] = read_rows(sigs, members[order])
    return out


def _exact_buckets(S, lengths, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """(permutation of the batch, bucket starts) for a batch of contiguous runs of `lengths`:
    runs split where the band values differ (a key collision), each bucket contiguous and in
    document order."""
    run_starts = np.cumsum(lengths) - lengths
    first = np.repeat(run_starts, lengths)
    same = (S[:, cols] == S[first, cols]).all(axis=1)
    perm = np.arange(len(S))
    bucket_starts = [run_starts]
    run_of = np.repeat(np.arange(len(lengths)), lengths)
    for r in np.unique(run_of[~same]).tolist():  # rare: 64-bit keys of unequal band values
        a = int(run_starts[r])
        b = a + int(lengths[r])
        _, inverse = np.unique(S[a:b, cols], axis=0, return_inverse=True)
        inverse = inverse.ravel()
        perm[a:b] = a + np.argsort(inverse, kind="stable")
        sub = np.sort(inverse)
        bucket_starts.append(a + np.flatnonzero(sub[1:] != sub[:-1]) + 1)
    return perm, np.unique(np.concatenate(bucket_starts))


def _bucket_pairs(docs: np.ndarray, bucket_starts: np.ndarray, band: int) -> np.ndarray:
    """(doc, head, band) for every member of every bucket of >= 2 documents."""
    sizes = np.diff(np.concatenate((bucket_starts, [len(docs)])))
    heads = np.repeat(docs[bucket_starts], sizes)
    many = np.repeat(sizes >= 2, sizes)
    out = np.empty(int(many.sum()), PAIR_DTYPE)
    out["doc"], out["head"], out["band"] = docs[many], heads[many], band
    return out


def _band_pairs(sigs: SignatureShards, band: int, rows: int, passes: int, stats):
    """The pairs of one band, pass by pass over its key space, batch by batch of runs."""
    cols = slice(band * rows, (band + 1) * rows)
    bounds = [(1 << 64) * p // passes for p in range(passes)] + [None]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        keys, docs = _pass_keys(sigs, band, lo, hi)
        starts, lengths = _runs(keys)
        del keys
        for s, n in _batches(starts, lengths, BATCH_MEMBERS):
            local = np.cumsum(n) - n
            members = docs[np.arange(int(n.sum())) + np.repeat(s - local, n)]
            S = _batch_signatures(sigs, members)
            perm, bucket_starts = _exact_buckets(S, n, cols)
            pairs = _bucket_pairs(members[perm], bucket_starts, band)
            stats["buckets"] += int(np.count_nonzero(pairs["doc"] == pairs["head"]))
            stats["pairs"] += len(pairs)
            yield pairs


def sort_pairs(pairs: np.ndarray) -> np.ndarray:
    """By document, then band: the order `dedup_clusters` reads them in."""
    return pairs[np.lexsort((pairs["band"], pairs["doc"]))]


def bucket_pairs(
    signature_paths,
    group: int,
    out_path: str | os.PathLike,
    *,
    bands_per_job: int,
    pass_documents: int | None = None,
) -> dict:
    """Bucket job `group`: the candidate pairs of bands `band_groups(bands, bands_per_job)[group]`
    to `out_path` (.npy of PAIR_DTYPE, sorted by (doc, band)) and its `.json` sidecar."""
    sigs = load_signature_shards(signature_paths)
    params = sigs.params
    bands, rows = params["bands"], params["rows"]
    groups = band_groups(bands, bands_per_job)
    if not 0 <= group < len(groups):
        raise ValueError(f"band group {group} is not in [0, {len(groups)})")
    passes = max(1, math.ceil(sigs.documents / (pass_documents or PASS_DOCUMENTS)))
    stats = {"buckets": 0, "pairs": 0}
    found = []
    lo, hi = groups[group]
    try:
        for band in range(lo, hi):
            found.extend(_band_pairs(sigs, band, rows, passes, stats))
            log.info("band %d of %d: %d buckets so far", band, bands, stats["buckets"])
    finally:
        sigs.close()
    pairs = sort_pairs(np.concatenate(found) if found else np.empty(0, PAIR_DTYPE))
    meta = {
        "group": group,
        "groups": len(groups),
        "band_range": [lo, hi],
        "documents": sigs.documents,
        "empty_skipped": sigs.empty_skipped,
        **params,
        "passes": passes,
        **stats,
    }
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, pairs)
    write_json(out_path.with_suffix(".json"), meta)
    return meta
