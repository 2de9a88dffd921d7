"""What each data job asks its node for (Snakemake `mem_mb`, `disk_mb`, `runtime` in minutes,
`threads`), computed from the size of its input: documents and bytes.

Memory is the job's own arrays, byte by byte from the code (named below), plus a fixed
interpreter share; runtime is the input over a throughput measured by `bench/data_scale.py`
on a 2-core x86 VM shared with other work (so a floor, not a promise), times
`compute.runtime_margin`, never under `compute.min_runtime_minutes`; disk is what the job
writes. Sizes come from the config (`data_sizes`): the plan is computed before any file exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MB = 1 << 20
BASE_MB = 600  # Python, numpy, the library: a data job's resident floor (measured ~150-400 MB)

# throughputs, MB (1e6 bytes) or documents per second of one core (bench/data_scale.py)
TOKENIZE_MB_S = 1.0  # jsonl bytes into tokens, per worker (HF tokenizers BPE + our writer)
SIGNATURE_MB_S = 2.0  # word-5-gram MinHash, 128 permutations (bench/minhash.py: ~2.4)
PARSE_MB_S = 80.0  # zstd + JSON, one process (the held-out split reads the last shard)
COPY_MB_S = 200.0  # file to file (the merge of the tokenized shards)
DOWNLOAD_MB_S = 50.0  # an assumption: a mirror's sustained rate to one node
BUCKET_DOCS_S = 1.0e7  # documents per band per second: key slices, sort, runs (0.11 s/M)
BUCKET_PAIRS_S = 1.0e5  # bucket members per second: signatures read, exact buckets (7.7 s/M)
CLUSTER_PAIRS_S = 1.0e5  # candidate pairs replayed per second (Python, with the comparisons)
SELECT_DOCS_S = 2.0e5  # documents copied per second by deduped_documents (one Python call each)
PACK_DOCS_S = 1.0e7  # doc_idx entries shuffled and packed per second
GENERATE_DOCS_S = 2.0e3  # generated documents per second (the embedded corpus: ~1.5 s)
BPE_MB_S = 5.0  # BPE training, jsonl bytes per second (tokenizers' trainer, multithreaded)

BYTES_PER_TOKEN = 2.0  # jsonl bytes per token, low (the Pile: ~886 GB for ~334B tokens, 2.65)
DUPLICATE_SHARE = 0.5  # documents in a bucket of >= 2 a band (the Pile lost 36% of its documents)
BUCKETS_PER_PAIR = 0.35  # buckets per candidate pair (bench, 30% copies: 89k of 285k a band)


@dataclass(frozen=True)
class DataSizes:
    """What the data jobs read: the whole corpus and one of its shards."""

    documents: int  # training documents in all
    jsonl_bytes: int  # uncompressed jsonl bytes in all
    shards: int  # tokenize jobs
    signature_shards: int  # dedup_signatures jobs
    stored_shard_bytes: int = 0  # one raw source file as downloaded (compressed)
    heldout_documents: int = 0

    @property
    def tokens(self) -> int:
        return math.ceil(self.jsonl_bytes / BYTES_PER_TOKEN)


def _res(mem_bytes: float, disk_bytes: float, seconds: float, compute: Mapping[str, Any]):
    minutes = seconds / 60.0 * compute["runtime_margin"]
    return {
        "mem_mb": BASE_MB + math.ceil(mem_bytes / MB),
        "disk_mb": max(1, math.ceil(disk_bytes / MB)),
        "runtime": max(int(compute["min_runtime_minutes"]), math.ceil(minutes)),
    }


def corpus(sizes: DataSizes, compute) -> dict:
    """The generated corpus: one document at a time (the world and planted sets are small)."""
    return _res(256 * MB, sizes.jsonl_bytes * 1.1, sizes.documents / GENERATE_DOCS_S, compute)


def tokenizer(sizes: DataSizes, compute, kind: str) -> dict:
    """A BPE trained on the corpus (word counts: ~1/20 of the text, measured on the embedded
    corpus), or GPT-NeoX-20B's downloaded (a few MB)."""
    if kind != "train_bpe":
        return _res(256 * MB, 16 * MB, 60, compute)
    b = sizes.jsonl_bytes
    return _res(b / 20, 16 * MB, b / (BPE_MB_S * 1e6), compute)


def download(sizes: DataSizes, compute) -> dict:
    b = sizes.stored_shard_bytes
    return _res(64 * MB, b, b / (DOWNLOAD_MB_S * 1e6), compute)


def heldout(sizes: DataSizes, compute) -> dict:
    """The last shard streamed; its last documents held in a window (~4 KB each, x3 as str)."""
    shard = sizes.jsonl_bytes / sizes.shards
    window = sizes.heldout_documents * 3 * sizes.jsonl_bytes / max(sizes.documents, 1)
    return _res(window, window / 3, shard / (PARSE_MB_S * 1e6), compute)


def tokenize(sizes: DataSizes, compute, workers: int) -> dict:
    """One shard: the writer's Python list of sizes (~36 bytes a document), chunks in flight
    (batch_docs x workers), a tokenizer per worker (~200 MB); writes uint16 tokens + index."""
    docs = sizes.documents / sizes.shards
    shard = sizes.jsonl_bytes / sizes.shards
    tokens = sizes.tokens / sizes.shards
    mem = docs * 36 + workers * 250 * MB
    return {
        **_res(mem, tokens * 2 + docs * 12, shard / (TOKENIZE_MB_S * 1e6 * workers), compute),
        "threads": workers,
    }


def tokenize_merge(sizes: DataSizes, compute) -> dict:
    """One shard's index at a time (int32 sizes + int64 pointers and doc_idx); copies every
    shard's tokens into the one .bin."""
    docs = sizes.documents / sizes.shards
    out = sizes.tokens * 2 + sizes.documents * 20
    return _res(docs * 20 * 2, out, out / (COPY_MB_S * 1e6), compute)


def dedup_signatures(sizes: DataSizes, compute, num_perm: int, bands: int) -> dict:
    """One shard: its signatures as uint32 blocks and joined (2 x 4 bytes a value), the band
    keys hashed, sorted and written (bands x ~40 bytes a document)."""
    docs = sizes.documents / sizes.signature_shards
    shard = sizes.jsonl_bytes / sizes.signature_shards
    mem = docs * (num_perm * 8 + bands * 40)
    disk = docs * (num_perm * 4 + bands * 12)
    return _res(mem, disk, shard / (SIGNATURE_MB_S * 1e6), compute)


def dedup_buckets(
    sizes: DataSizes, compute, num_perm: int, bands: int, pass_documents: int, batch: int
) -> dict:
    """`bands` bands of every document: a pass of at most `pass_documents` keys (key, doc,
    order, sorted copies: ~48 bytes each), a batch of member signatures (read, joined,
    reordered: 4 copies), and the group's pairs (18 bytes; listed, joined, sorted: 62, and
    150 measured with the run lists and the allocator's slack: bench/data_scale.py)."""
    n = sizes.documents
    pairs = DUPLICATE_SHARE * n * bands
    mem = min(n, pass_documents) * 48 + batch * num_perm * 4 * 4 + pairs * 150
    seconds = n * bands / BUCKET_DOCS_S + pairs / BUCKET_PAIRS_S
    return _res(mem, pairs * 18, seconds, compute)


def dedup_clusters(sizes: DataSizes, compute, bands: int, window_pairs: int) -> dict:
    """A slot per bucket (key and kept member, listed, joined and sorted: ~32 bytes), a window
    of pairs as arrays and Python lists (~300 bytes each, the window's signatures included),
    the dropped documents' clusters (~64 bytes each while sorted); writes the kept ids (8
    bytes each) and clusters."""
    n = sizes.documents
    pairs = DUPLICATE_SHARE * n * bands
    buckets = pairs * BUCKETS_PER_PAIR
    dropped = DUPLICATE_SHARE * n
    mem = buckets * 32 + min(pairs, window_pairs) * 300 + dropped * 64
    disk = n * 8 + dropped * 20
    return _res(mem, disk, pairs / CLUSTER_PAIRS_S, compute)


def deduped_documents(sizes: DataSizes, compute) -> dict:
    """The kept ids (8 bytes each) and the writer's list of sizes (~36 bytes a document)."""
    n = sizes.documents
    return _res(n * 44, sizes.tokens * 2 + n * 20, n / SELECT_DOCS_S, compute)


def pack_shuffle(sizes: DataSizes, compute, epochs: int, samples: int, row_tokens: int) -> dict:
    """GPT-NeoX's index maps: doc_idx (int32 a document an epoch), sample_idx (2 x int32 a
    sample), shuffle_idx (int64 a sample), the sizes (int32); writes the uint16 samples."""
    n = sizes.documents
    mem = n * 4 * (epochs + 1) + samples * 16
    disk = samples * row_tokens * 2 + samples * 12 + n * 4 * epochs
    return _res(mem, disk, n * epochs / PACK_DOCS_S + disk / (COPY_MB_S * 1e6), compute)
