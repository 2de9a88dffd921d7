"""MinHash signatures (rule `dedup_signatures`, the first stage of near-duplicate removal).

Each job signs the documents of one corpus shard (`shards.py`): word `shingle_size`-grams of
the lower-cased, whitespace-normalised text, hashed and permuted exactly as datasketch's
`MinHash` does, but with numpy over many shingles at once. Beside the signatures it writes
each LSH band's keys sorted, so a bucket job (`dedup_buckets`) reads one key range of one band
of every shard and never the whole corpus's signatures.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass
from functools import cached_property
from hashlib import sha1
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workflow.core.io import atomic_path, write_json
from workflow.data.shards import CorpusShard, shard_texts

if TYPE_CHECKING:  # datasketch imports scipy: at run time only where used (lsh_bands)
    from datasketch import MinHash


def shingles(text: str, shingle_size: int) -> set[bytes]:
    """Word n-grams of the lower-cased text; a shorter text is one shingle."""
    words = text.lower().split()
    if len(words) <= shingle_size:
        return {" ".join(words).encode("utf-8")}
    return {
        " ".join(words[i : i + shingle_size]).encode("utf-8")
        for i in range(len(words) - shingle_size + 1)
    }


class Permutations:
    """The permutations `datasketch.MinHash(num_perm, seed)` draws, applied to many shingles at
    once: bit-identical to `MinHash.update` one shingle at a time (tested), at numpy speed."""

    def __init__(self, num_perm: int, seed: int, scheme: str | None = None):
        # scheme None: datasketch's default, the one `deduplicate` and the LSH use
        from datasketch import MinHash

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
        from datasketch import MinHash

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
    perms = perms or Permutations(num_perm, seed)
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


def _reduce(perms: Permutations, hashes: list[np.ndarray], counts: list[int]) -> np.ndarray:
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


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) of `datasketch.MinHashLSH(threshold, num_perm)`: its optimal split (equal
    weights of false positives and negatives); 7 bands of 18 rows for 0.87 and 128.

    datasketch's `_optimal_param` tries every (b, r) with b·r <= num_perm and keeps the first
    with the least FP + FN area, integrating each with scipy's `quad`; that import
    (scipy.integrate) and ~1,400 integrals cost ~0.7 s in every Snakemake start, which needs
    the band count to plan the bucket jobs. The same areas here, all pairs at once, by
    Gauss-Legendre quadrature over 64 sub-intervals (tests/data: the same split as datasketch
    for thresholds 0.5-0.95 and 32-256 permutations)."""
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    b, r = (np.array(v, dtype=np.float64)[:, None] for v in zip(*pairs, strict=True))

    def area(lo: float, hi: float, f) -> np.ndarray:
        nodes, weights = np.polynomial.legendre.leggauss(16)
        edges = np.linspace(lo, hi, 65)
        half = np.diff(edges)[:, None] / 2
        s = ((edges[:-1, None] + edges[1:, None]) / 2 + half * nodes).ravel()
        return f(s) @ (half * weights).ravel()

    false_pos = area(0.0, threshold, lambda s: 1 - (1 - s**r) ** b)
    false_neg = area(threshold, 1.0, lambda s: (1 - s**r) ** b)
    best = int(np.argmin(0.5 * false_pos + 0.5 * false_neg))  # the first least, as datasketch
    if pairs[best][0] < 2:
        raise ValueError(
            f"MinHash LSH at threshold {threshold} with {num_perm} permutations: "
            "the optimal split has fewer than 2 bands"
        )
    return pairs[best]


_FNV_OFFSET, _MIX = np.uint64(0xCBF29CE484222325), np.uint64(0x9E3779B97F4A7C15)
_FMIX1, _FMIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
BAND_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u4")])


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) uint64: a 64-bit hash of each document's `rows` values of each band. Equal
    band values give equal keys; the rare unequal values with equal keys are told apart by
    `dedup_buckets`, which compares the values themselves (MinHashLSH's buckets are exact)."""
    keys = np.empty((bands, len(sigs)), np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            h = np.full(len(sigs), _FNV_OFFSET)
            for c in range(b * rows, (b + 1) * rows):
                h ^= sigs[:, c].astype(np.uint64)
                h *= _MIX
                h ^= h >> np.uint64(29)
            h ^= h >> np.uint64(33)  # MurmurHash3's fmix64: every input bit reaches every key bit
            h *= _FMIX1
            h ^= h >> np.uint64(33)
            h *= _FMIX2
            h ^= h >> np.uint64(33)
            keys[b] = h
    return keys


def sorted_band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) records (key, doc) of each band, sorted by key, then by document (the
    shard's row): what a bucket job reads one key range of."""
    keys = band_keys(sigs, bands, rows)
    out = np.empty(keys.shape, BAND_DTYPE)
    for b in range(bands):
        order = np.argsort(keys[b], kind="stable")
        out[b]["key"] = keys[b][order]
        out[b]["doc"] = order
    return out


def band_keys_path(signatures_path: str | os.PathLike) -> Path:
    """`part3.npy` -> `part3.bands.npy`: the sorted band keys beside the signatures."""
    p = Path(signatures_path)
    return p.with_name(p.stem + ".bands.npy")


def _as_uint32(block: np.ndarray, shard: CorpusShard) -> np.ndarray:
    if block.dtype != np.uint32 and block.size and int(block.max()) > np.iinfo(np.uint32).max:
        raise ValueError(f"{shard.name()}: MinHash values above 2^32 (a datasketch change?)")
    return block.astype(np.uint32, copy=False)


def signature_shard(
    shard: CorpusShard,
    out_path: str | os.PathLike,
    *,
    num_perm: int,
    shingle_size: int,
    seed: int,
    threshold: float,
    **_,
) -> dict:
    """Scatter: MinHash signatures of one corpus shard's documents, in order, to `out_path`
    (.npy, (documents, num_perm), uint32 as datasketch's values all fit), the band keys of
    `lsh_bands(threshold, num_perm)` sorted per band to `band_keys_path(out_path)`, and a
    `.json` sidecar. Empty documents are skipped as `read_jsonl` skips them, so the joined row
    number is the document id of the tokenized dataset."""
    counts = {"documents": 0, "empty_skipped": 0}
    texts = shard_texts(shard, counts)
    # uint32 block by block: a Pile shard's 7M signatures are 3.6 GB so, twice that in uint64
    blocks = [_as_uint32(b, shard) for b in _signature_batches(texts, num_perm, shingle_size, seed)]
    sigs = np.concatenate(blocks) if blocks else np.empty((0, num_perm), np.uint32)
    del blocks
    meta = {
        "corpus": shard.path,
        "shard": shard.index,
        "num_shards": shard.count,
        "bytes": list(shard.byte_range() or (0, Path(shard.path).stat().st_size)),
        "heldout_tail": shard.heldout_tail,
        "empty_skipped": counts["empty_skipped"],
        "shingle_size": shingle_size,
        "seed": seed,
    }
    return write_signature_shard(sigs, out_path, threshold=threshold, meta=meta)


def write_signature_shard(
    sigs: np.ndarray, out_path: str | os.PathLike, *, threshold: float, meta: dict
) -> dict:
    """Write one shard's signatures (uint32), its sorted band keys and its `.json` sidecar
    (`meta` + documents, num_perm, threshold, bands, rows); return the sidecar."""
    documents, num_perm = sigs.shape
    bands, rows = lsh_bands(threshold, num_perm)
    meta = {
        **meta,
        "documents": documents,
        "num_perm": num_perm,
        "threshold": threshold,
        "bands": bands,
        "rows": rows,
    }
    out_path = Path(out_path)
    for path, array in (
        (out_path, sigs.astype(np.uint32, copy=False)),
        (band_keys_path(out_path), sorted_band_keys(sigs, bands, rows)),
    ):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    write_json(out_path.with_suffix(".json"), meta)
    return meta


SHARED_PARAMS = ("num_perm", "shingle_size", "seed", "num_shards", "threshold", "bands", "rows")


@dataclass
class SignatureShards:
    """The signature shards of a corpus, checked to be one complete, consistent set."""

    paths: list[Path]
    metas: list[dict]
    offsets: np.ndarray  # offsets[k]: global id of shard k's first document; [-1]: all
    _files: list | None = None

    @property
    def documents(self) -> int:
        return int(self.offsets[-1])

    @property
    def params(self) -> dict:
        return {k: self.metas[0][k] for k in SHARED_PARAMS}

    @property
    def empty_skipped(self) -> int:
        return sum(m["empty_skipped"] for m in self.metas)

    def signatures(self, k: int, mmap: bool = True) -> np.ndarray:
        return np.load(self.paths[k], mmap_mode="r" if mmap else None)

    def band_keys(self, k: int) -> np.ndarray:
        return np.load(band_keys_path(self.paths[k]), mmap_mode="r")

    def read(self, doc: int, width: int) -> bytes:
        """One document's signature bytes by a positioned read: no mapping, so a job reading
        many scattered rows keeps its resident memory its own."""
        k = bisect.bisect_right(self._starts, doc) - 1
        if self._files is None:
            self._files = [_open_rows(p) for p in self.paths]
        fd, start = self._files[k]
        return os.pread(fd, width, start + (doc - self._starts[k]) * width)

    def row(self, doc: int) -> np.ndarray:
        return np.frombuffer(self.read(doc, 4 * self.params["num_perm"]), np.uint32)

    @cached_property
    def _starts(self) -> list[int]:
        return self.offsets[:-1].tolist()

    def close(self) -> None:
        for fd, _ in self._files or ():
            os.close(fd)
        self._files = None


def _open_rows(path: Path) -> tuple[int, int]:
    """(file descriptor, offset of the first row) of a uint32 signature .npy."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0
        if version != (1, 0):
            read = np.lib.format.read_array_header_2_0
        _, fortran, dtype = read(f)
        if fortran or dtype != np.uint32:
            raise ValueError(f"{path}: expected C-ordered uint32 signatures, got {dtype}")
        start = f.tell()
    return os.open(path, os.O_RDONLY), start


def _read_meta(p: Path) -> dict:
    meta_path = p.with_suffix(".json")
    for need in (p, meta_path, band_keys_path(p)):
        if not need.is_file():
            raise FileNotFoundError(
                f"{need}: no such file: signature shard {p.name} is incomplete (run its "
                "dedup_signatures job again)"
            )
    try:
        meta = json.loads(meta_path.read_text())
        shape = np.load(p, mmap_mode="r").shape
        keys_shape = np.load(band_keys_path(p), mmap_mode="r").shape
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: cannot read the signature shard: {e}") from None
    if shape != (meta["documents"], meta["num_perm"]):
        raise ValueError(
            f"{p}: shape {shape}, its {meta_path.name} says ({meta['documents']}, "
            f"{meta['num_perm']})"
        )
    if keys_shape != (meta["bands"], meta["documents"]):
        raise ValueError(
            f"{band_keys_path(p)}: shape {keys_shape}, expected "
            f"({meta['bands']}, {meta['documents']}): rebuild the shard"
        )
    return meta


def load_signature_shards(paths) -> SignatureShards:
    """Check the shards (same settings, all of them, in order) and number their documents."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no signature shards given")
    metas = []
    for k, p in enumerate(paths):
        meta = _read_meta(p)
        mine = {key: meta[key] for key in SHARED_PARAMS}
        if metas and mine != (first := {key: metas[0][key] for key in SHARED_PARAMS}):
            raise ValueError(
                f"{p}: made with {mine}, the first shard with {first}: rebuild the signatures "
                "with one setting"
            )
        if meta["shard"] != k:
            raise ValueError(f"{p}: is shard {meta['shard']}, expected shard {k} here")
        metas.append(meta)
    if len(paths) != metas[0]["num_shards"]:
        raise ValueError(
            f"{len(paths)} signature shards given, they were made as {metas[0]['num_shards']}"
        )
    offsets = np.zeros(len(paths) + 1, np.int64)
    np.cumsum([m["documents"] for m in metas], out=offsets[1:])
    return SignatureShards(paths, metas, offsets)
