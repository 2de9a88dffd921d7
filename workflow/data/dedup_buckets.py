"""LSH buckets of a range of bands (rule `dedup_buckets`): the verified near-duplicate pairs.

MinHashLSH (the paper's dedup, `dedup.minhash_lsh`) splits each signature into `bands` bands of
`rows` values; two documents share a bucket of a band when they agree on all its rows. A
document is dropped when a kept, earlier document that shares a bucket with it agrees with it
on at least `threshold` of all hash values. A bucket job does the bucketing and the agreement
for its bands and every document, in bounded memory:

1. one key range (1/passes of the key space) of one band at a time: that slice of every
   shard's sorted band keys (`dedup_signatures.sorted_band_keys`), sorted together; runs of
   equal keys are the candidate buckets;
2. the members' signatures, read by document id; a run splits where the band values differ
   (a 64-bit key collision is not a bucket);
3. a pair (doc, other, agree) for each `other` < `doc` of one bucket that agree on
   `agree` >= `agree_min` values, where `other` is the first of its identical-signature copies:
   a later copy is never kept (it is dropped by whoever dropped or kept the first), so it is
   never the document another one is compared with.

The pairs of all bands are sorted by (doc, other), each once; `dedup_clusters` joins the jobs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, write_json
from workflow.data.dedup_signatures import SignatureShards, band_keys, load_signature_shards

log = logging.getLogger(__name__)

PAIR_DTYPE = np.dtype([("doc", "<i8"), ("other", "<i8"), ("agree", "<u2")])
PASS_DOCUMENTS = 1 << 24  # band keys sorted at once: ~40 bytes each, ~0.7 GB a pass
BATCH_MEMBERS = 1 << 18  # bucket members whose signatures are read at once
PAIR_CHUNK = 1 << 15  # pairs compared at once: (chunk, num_perm) temporaries


def band_groups(bands: int, bands_per_job: int) -> list[tuple[int, int]]:
    """[lo, hi) band ranges of the bucket jobs: `bands_per_job` bands each, the last fewer."""
    if bands_per_job < 1:
        raise ValueError(f"bands_per_job must be >= 1, got {bands_per_job}")
    return [(lo, min(lo + bands_per_job, bands)) for lo in range(0, bands, bands_per_job)]


def agree_min(threshold: float, num_perm: int) -> int:
    """The fewest equal hash values whose share passes `threshold`, computed as `dedup`
    compares them (the mean of the equal values, in float64): 112 of 128 for 0.87."""
    return next(c for c in range(num_perm + 1) if c / num_perm >= threshold)


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
    """The signatures of global document ids `docs` (ascending), (len(docs), num_perm)."""
    out = np.empty((len(docs), sigs.params["num_perm"]), np.uint32)
    shard = np.searchsorted(sigs.offsets, docs, side="right") - 1
    for k in np.unique(shard).tolist():
        mine = shard == k
        out[mine] = sigs.signatures(k)[docs[mine] - sigs.offsets[k]]
    return out


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


def _representatives(S, bucket_of: np.ndarray) -> np.ndarray:
    """True for each member that is the first of its identical signatures in its bucket; an
    identical later copy is False (rows compared, not only hashed)."""
    full = band_keys(S, 1, S.shape[1])[0]
    order = np.lexsort((np.arange(len(S)), full, bucket_of))
    b, f = bucket_of[order], full[order]
    new = np.ones(len(S), bool)
    new[1:] = (b[1:] != b[:-1]) | (f[1:] != f[:-1])
    first = order[np.maximum.accumulate(np.where(new, np.arange(len(S)), 0))]
    rep = np.empty(len(S), bool)
    rep[order] = new | ~(S[order] == S[first]).all(axis=1)
    return rep


def _pairs_in_buckets(S, docs, bucket_starts, rep, need: int) -> np.ndarray:
    """Every (later member, earlier representative) of a bucket that agree on >= need values."""
    n = len(S)
    ends = np.diff(np.concatenate((bucket_starts, [n])))
    bucket_end = np.repeat(bucket_starts + ends, ends)
    reps = np.flatnonzero(rep)
    counts = bucket_end[reps] - reps - 1
    out = []
    cum = np.cumsum(counts)
    lo = 0
    while lo < len(reps):  # reps whose pairs fit one slice of index arrays
        hi = max(lo + 1, int(np.searchsorted(cum, (cum[lo - 1] if lo else 0) + (1 << 22))))
        c = counts[lo:hi]
        a = np.repeat(reps[lo:hi], c)
        b = a + 1 + np.arange(len(a)) - np.repeat(np.cumsum(c) - c, c)
        for s in range(0, len(a), PAIR_CHUNK):
            x, y = a[s : s + PAIR_CHUNK], b[s : s + PAIR_CHUNK]
            agree = (S[x] == S[y]).sum(axis=1)
            keep = agree >= need
            rec = np.empty(int(keep.sum()), PAIR_DTYPE)
            rec["doc"], rec["other"], rec["agree"] = docs[y[keep]], docs[x[keep]], agree[keep]
            out.append(rec)
        lo = hi
    return np.concatenate(out) if out else np.empty(0, PAIR_DTYPE)


def _band_pairs(sigs: SignatureShards, band: int, rows: int, need: int, passes: int, stats):
    """The pairs of one band, pass by pass over its key space, batch by batch of buckets."""
    cols = slice(band * rows, (band + 1) * rows)
    bounds = [(1 << 64) * p // passes for p in range(passes)] + [None]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        keys, docs = _pass_keys(sigs, band, lo, hi)
        starts, lengths = _runs(keys)
        del keys
        stats["candidate_runs"] += len(starts)
        for s, n in _batches(starts, lengths, BATCH_MEMBERS):
            local = np.cumsum(n) - n
            members = docs[np.arange(int(n.sum())) + np.repeat(s - local, n)]
            S = _batch_signatures(sigs, members)
            perm, bucket_starts = _exact_buckets(S, n, cols)
            S, members = S[perm], members[perm]
            sizes = np.diff(np.concatenate((bucket_starts, [len(S)])))
            stats["buckets"] += int((sizes >= 2).sum())
            rep = _representatives(S, np.repeat(np.arange(len(sizes)), sizes))
            yield _pairs_in_buckets(S, members, bucket_starts, rep, need)


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """Sorted by (doc, other), each pair once (several bands find the same pair)."""
    if not len(pairs):
        return pairs
    pairs = pairs[np.lexsort((pairs["other"], pairs["doc"]))]
    new = np.ones(len(pairs), bool)
    new[1:] = (pairs["doc"][1:] != pairs["doc"][:-1]) | (pairs["other"][1:] != pairs["other"][:-1])
    return pairs[new]


def bucket_pairs(
    signature_paths,
    group: int,
    out_path: str | os.PathLike,
    *,
    bands_per_job: int,
    pass_documents: int = PASS_DOCUMENTS,
) -> dict:
    """Bucket job `group`: the pairs of bands `band_groups(bands, bands_per_job)[group]` to
    `out_path` (.npy of PAIR_DTYPE, sorted by (doc, other)) and its `.json` sidecar."""
    sigs = load_signature_shards(signature_paths)
    params = sigs.params
    bands, rows = params["bands"], params["rows"]
    groups = band_groups(bands, bands_per_job)
    if not 0 <= group < len(groups):
        raise ValueError(f"band group {group} is not in [0, {len(groups)})")
    need = agree_min(params["threshold"], params["num_perm"])
    passes = max(1, math.ceil(sigs.documents / pass_documents))
    stats = {"candidate_runs": 0, "buckets": 0}
    found = []
    lo, hi = groups[group]
    for band in range(lo, hi):
        found.extend(_band_pairs(sigs, band, rows, need, passes, stats))
        log.info("band %d of %d: %d buckets so far", band, bands, stats["buckets"])
    pairs = unique_pairs(np.concatenate(found) if found else np.empty(0, PAIR_DTYPE))
    meta = {
        "group": group,
        "groups": len(groups),
        "band_range": [lo, hi],
        "documents": sigs.documents,
        "empty_skipped": sigs.empty_skipped,
        **params,
        "agree_min": need,
        "passes": passes,
        **stats,
        "pairs": len(pairs),
    }
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, pairs)
    write_json(out_path.with_suffix(".json"), meta)
    return meta
