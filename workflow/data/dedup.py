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

from workflow.core.io import atomic_path, write_json
from workflow.data.corpus import (
    CorpusError,
    byte_ranges,
    iter_lines_in_range,
    line_number_at,
    parse_jsonl_line,
)
from workflow.data.indexed_dataset import IndexedDatasetWriter, MMapIndexedDataset


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


def _shard_texts(path: Path, lo: int, hi: int, counts: dict):
    for pos, raw in iter_lines_in_range(path, lo, hi):
        try:
            record = parse_jsonl_line(path, 0, raw)
        except CorpusError:  # re-raise naming the real line
            parse_jsonl_line(path, line_number_at(path, pos), raw)
            raise
        if record is None:
            if raw.strip():
                counts["empty_skipped"] += 1
            continue
        counts["documents"] += 1
        yield record["text"]


def signature_shard(
    jsonl_path: str | os.PathLike,
    shard: int,
    num_shards: int,
    out_path: str | os.PathLike,
    *,
    num_perm: int,
    shingle_size: int,
    seed: int,
    **_,
) -> dict:
    """Scatter: MinHash signatures of the documents of one byte range of the corpus, in order,
    to `out_path` (.npy, (documents, num_perm)) with a `.json` sidecar; `gather_signatures`
    joins the shards. Empty documents are skipped as `read_jsonl` skips them, so the joined
    row number is the document id of the tokenized dataset."""
    path = Path(jsonl_path)
    if path.suffix == ".zst":
        raise ValueError(f"{path}: sharded dedup needs an uncompressed .jsonl")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in [0, {num_shards})")
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    lo, hi = byte_ranges(path, num_shards)[shard]
    counts = {"documents": 0, "empty_skipped": 0}
    texts = _shard_texts(path, lo, hi, counts)
    blocks = list(_signature_batches(texts, num_perm, shingle_size, seed))
    sigs = np.concatenate(blocks) if blocks else np.empty((0, num_perm), np.uint64)
    meta = {
        "corpus": str(path),
        "shard": shard,
        "num_shards": num_shards,
        "bytes": [lo, hi],
        **counts,
        "num_perm": num_perm,
        "shingle_size": shingle_size,
        "seed": seed,
    }
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        np.save(f, sigs.astype(np.uint64, copy=False))
    write_json(out_path.with_suffix(".json"), meta)
    return meta


def _load_shards(paths) -> tuple[list[np.ndarray], dict]:
    sigs, params, empty = [], None, 0
    for k, p in enumerate(map(Path, paths)):
        meta_path = p.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
            arr = np.load(p, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: cannot read the signature shard: {e}") from None
        mine = (meta["num_perm"], meta["shingle_size"], meta["seed"], meta["num_shards"])
        if params is None:
            params = mine
        elif mine != params:
            raise ValueError(
                f"{p}: made with (num_perm, shingle_size, seed, num_shards) = {mine}, the "
                f"first shard with {params}: rebuild the signatures with one setting"
            )
        if meta["shard"] != k:
            raise ValueError(f"{p}: is shard {meta['shard']}, expected shard {k} here")
        if arr.shape != (meta["documents"], meta["num_perm"]):
            raise ValueError(
                f"{p}: shape {arr.shape}, its {meta_path.name} says "
                f"({meta['documents']}, {meta['num_perm']})"
            )
        sigs.append(arr)
        empty += meta["empty_skipped"]
    if params is None:
        raise ValueError("no signature shards given")
    if len(sigs) != params[3]:
        raise ValueError(f"{len(sigs)} signature shards given, they were made as {params[3]}")
    num_perm, shingle_size, seed, _ = params
    return sigs, {
        "num_perm": num_perm,
        "shingle_size": shingle_size,
        "seed": seed,
        "empty_skipped": empty,
    }


def gather_signatures(signature_paths, *, threshold: float, **_) -> DedupResult:
    """Gather: MinHashLSH over the shards' signatures, in document order. Keeps the first
    document of every near-duplicate group (estimated Jaccard >= threshold)."""
    shards, params = _load_shards(signature_paths)
    num_perm, seed = params["num_perm"], params["seed"]
    perms = _Permutations(num_perm, seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[int, np.ndarray] = {}
    cluster_of: dict[int, list[int]] = {}  # kept id -> its cluster (kept id first)
    doc_id = -1
    for shard in shards:
        for sig in shard:
            doc_id += 1
            sig = np.asarray(sig, dtype=perms.dtype)
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
    n = doc_id + 1
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
            "empty_skipped": params["empty_skipped"],
            "threshold": threshold,
            **{k: params[k] for k in ("num_perm", "shingle_size", "seed")},
            "shards": len(shards),
        },
    )


def deduplicate(
    jsonl_path: str | os.PathLike,
    *,
    threshold: float,
    num_perm: int,
    shingle_size: int,
    seed: int,
    shards: int = 1,
    work_dir: str | os.PathLike | None = None,
) -> DedupResult:
    """Scatter and gather in one process (tests, small corpora). Document ids count the
    documents `read_jsonl` yields (empty texts skipped), the numbering `tokenize_documents`
    gives the entries of its MMapIndexedDataset."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        paths = [Path(tmp) / f"shard{k}.npy" for k in range(shards)]
        for k, p in enumerate(paths):
            signature_shard(
                jsonl_path, k, shards, p, num_perm=num_perm, shingle_size=shingle_size, seed=seed
            )
        return gather_signatures(paths, threshold=threshold)


def write_dedup_outputs(result: DedupResult, out_dir: str | os.PathLike) -> None:
    """kept_ids.npy, dropped_ids.npy, clusters.jsonl (one JSON list of document ids a line,
    the kept one first) and dedup_stats.json."""
    out_dir = Path(out_dir)
    kept = np.asarray(result.kept_ids, dtype=np.int64)
    dropped = np.setdiff1d(np.arange(result.stats["documents_in"], dtype=np.int64), kept)
    for name, ids in (("kept_ids.npy", kept), ("dropped_ids.npy", dropped)):
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as f:
            np.save(f, ids)
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
    stats = {
        "documents_in": len(ds),
        "documents_out": int(kept.size),
        "tokens_in": ds.num_tokens,
        "tokens_out": tokens_out,
    }
    source_meta = Path(str(ds.bin_path)[: -len(".bin")] + ".json")
    if source_meta.exists() and "vocab_size" in (src := json.loads(source_meta.read_text())):
        stats["vocab_size"] = src["vocab_size"]  # same tokenizer as the standard documents
    return stats


# The paper (section 2.2): dedup took the Pile from 334B to 207B tokens (GPT-NeoX-20B tokenizer).
PAPER_TOKENS_IN, PAPER_TOKENS_OUT = 334e9, 207e9


def token_reduction_report(dedup_stats: dict, documents_stats: dict) -> dict:
    """What dedup removed, in documents and tokens, beside the paper's 334B -> 207B."""
    t_in, t_out = documents_stats["tokens_in"], documents_stats["tokens_out"]
    return {
        **{k: dedup_stats[k] for k in ("documents_in", "documents_out", "duplicate_clusters")},
        "documents_removed_fraction": round(
            1 - dedup_stats["documents_out"] / max(dedup_stats["documents_in"], 1), 6
        ),
        "tokens_in": t_in,
        "tokens_out": t_out,
        "tokens_removed_fraction": round(1 - t_out / max(t_in, 1), 6),
        "paper": {
            "tokens_in": PAPER_TOKENS_IN,
            "tokens_out": PAPER_TOKENS_OUT,
            "tokens_removed_fraction": round(1 - PAPER_TOKENS_OUT / PAPER_TOKENS_IN, 6),
        },
        "settings": {
            k: dedup_stats[k] for k in ("threshold", "num_perm", "shingle_size", "seed", "shards")
        },
    }
