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
from hashlib import sha1
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


class _Permutations:
    """The permutations `datasketch.MinHash(num_perm, seed)` draws, applied to many shingles at
    once: bit-identical to `MinHash.update` one shingle at a time (tested), at numpy speed."""

    def __init__(self, num_perm: int, seed: int, scheme: str | None = None):
        # scheme None: datasketch's default, the one `deduplicate` and the LSH use
        extra = {} if scheme is None else {"scheme": scheme}
        template = MinHash(num_perm=num_perm, seed=seed, **extra)
        self.num_perm = num_perm
        self.seed = seed
        self.scheme = getattr(template, "scheme", "legacy")  # datasketch < 2.0: legacy only
        self.permutations = template.permutations
        self.dtype = template.hashvalues.dtype
        a, b = template.permutations
        if self.scheme == "legacy":  # (a * h + b) % (2^61 - 1) & (2^32 - 1), in uint64
            self.a, self.b = np.asarray(a, np.uint64), np.asarray(b, np.uint64)
        elif self.scheme == "affine32":  # fmix32(h), then a * h + b mod 2^32
            self.a, self.b = np.asarray(a, np.uint32), np.asarray(b, np.uint32)
        else:
            raise ValueError(f"datasketch MinHash scheme {self.scheme!r} is not supported")

    def hash_shingles(self, shingles_: list[bytes]) -> np.ndarray:
        """datasketch's default hashfunc, sha1_hash32: the first 4 digest bytes, little-endian."""
        digests = b"".join([sha1(s).digest()[:4] for s in shingles_])
        return np.frombuffer(digests, dtype="<u4")

    def permute(self, hashes: np.ndarray) -> np.ndarray:
        """(len(hashes), num_perm): every permutation of every shingle hash."""
        if self.scheme == "legacy":
            phv = hashes.astype(np.uint64)[:, None] * self.a
            phv += self.b
            phv %= _MERSENNE_PRIME
            phv &= _MAX_HASH32
            return phv
        h = hashes.astype(np.uint32)
        # MurmurHash3's fmix32, as datasketch's _fmix (uint32 arithmetic wraps)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
        phv = h[:, None] * self.a
        phv += self.b
        return phv

    def signatures(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Row i = the minimum over hashes[offsets[i]:offsets[i+1]] (never empty) of each
        permutation, in the scheme's dtype (datasketch's `hashvalues`)."""
        phv = self.permute(hashes)
        return np.minimum.reduceat(phv, offsets[:-1], axis=0).astype(self.dtype, copy=False)

    def signature(self, hashes: np.ndarray, step: int) -> np.ndarray:
        """One document's signature, `step` shingles per numpy pass."""
        sig = self.permute(hashes[:step]).min(axis=0)
        for i in range(step, len(hashes), step):
            np.minimum(sig, self.permute(hashes[i : i + step]).min(axis=0), out=sig)
        return sig.astype(self.dtype, copy=False)

    def minhash(self, hashvalues: np.ndarray) -> MinHash:
        return MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashvalues=hashvalues,
            permutations=self.permutations,
            scheme=self.scheme,
        )


_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH32 = np.uint64((1 << 32) - 1)
_PASS_BYTES = 4 << 20


def _signature_batches(texts, num_perm: int, shingle_size: int, seed: int, perms=None):
    """Yield (n_i, num_perm) signature blocks, in document order, in the scheme's dtype."""
    perms = perms or _Permutations(num_perm, seed)
    # shingles per numpy pass: the (shingles, num_perm) temporaries stay cache-sized, several
    # times faster than one pass over a large block (first-touch page faults, memory traffic)
    budget = max(1, _PASS_BYTES // (num_perm * 8))
    hashes: list[np.ndarray] = []
    counts: list[int] = []
    pending = 0
    for text in texts:
        h = perms.hash_shingles(shingles(text, shingle_size))
        if len(h) > budget:  # a long document alone, in several passes
            if counts:
                yield _reduce(perms, hashes, counts)
                hashes, counts, pending = [], [], 0
            yield perms.signature(h, budget)[None, :]
            continue
        if pending + len(h) > budget:
            yield _reduce(perms, hashes, counts)
            hashes, counts, pending = [], [], 0
        hashes.append(h)
        counts.append(len(h))
        pending += len(h)
    if counts:
        yield _reduce(perms, hashes, counts)


def _reduce(perms: _Permutations, hashes: list[np.ndarray], counts: list[int]) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return perms.signatures(np.concatenate(hashes), offsets)


def minhash_signatures(texts, num_perm: int, shingle_size: int, seed: int) -> np.ndarray:
    """(n, num_perm) uint64 MinHash signatures, identical to datasketch's `hashvalues` after
    `MinHash(num_perm, seed).update(s)` for every shingle s of each text."""
    blocks = list(_signature_batches(texts, num_perm, shingle_size, seed))
    if not blocks:
        return np.empty((0, num_perm), np.uint64)
    return np.concatenate(blocks).astype(np.uint64)


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
    perms = _Permutations(num_perm, seed)
    signatures = _signature_batches(texts, num_perm, shingle_size, seed, perms)
    for doc_id, sig in enumerate(row for block in signatures for row in block):
        n += 1
        m = perms.minhash(sig)
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
