"""The pre-shuffled sample file: Pythia's exact data order, rebuilt as GPT-NeoX v1.0 builds it.

Re-implements `_build_index_mappings` of GPT-NeoX v1.0 `megatron/data/gpt2_dataset.py` and
`build_sample_idx` of `megatron/data/helpers.cpp` (reference/pythia.md §3.4):

1. epochs = the smallest E with (E * tokens_per_epoch - 1) // seq_length >= num_samples;
2. doc_idx = every document id, E times, as int32, shuffled ONCE across all epochs by
   `np.random.RandomState(seed)`;
3. sample_idx = greedy packing of doc_idx into seq_length + 1 token windows, consecutive windows
   overlapping by one token (the last target of one is the first input of the next);
4. shuffle_idx = arange(#windows) shuffled by the same RNG stream.

Training sample k is window shuffle_idx[k]. We materialise the samples as a fixed-length
MMapIndexedDataset (row k = sample k), the format of EleutherAI's `*-pythia-preshuffled` files,
so that step s is simply rows [s*B, (s+1)*B).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from workflow.core.io import (
    atomic_path,
    file_digest,
    fingerprint,
    read_json,
    sha256_file,
    write_json,
)
from workflow.data.indexed_dataset import IndexedDatasetWriter, MMapIndexedDataset, prefix_paths


class DataOrderError(ValueError):
    """The documents cannot provide the requested samples."""


def num_epochs(tokens_per_epoch: int, seq_length: int, num_samples: int) -> int:
    """Epochs needed for num_samples windows of seq_length + 1 tokens overlapping by one."""
    if tokens_per_epoch < 2:
        raise DataOrderError(f"the documents hold {tokens_per_epoch} tokens; need at least 2")
    epochs = 0
    total = 0
    while True:
        epochs += 1
        total += tokens_per_epoch
        # -1: every window needs seq_length + 1 tokens but shares its last with the next
        if (total - 1) // seq_length >= num_samples:
            return epochs


def build_doc_idx(documents, num_epochs: int, np_rng: np.random.RandomState) -> np.ndarray:
    """All documents, num_epochs times, shuffled once across the epochs (int32, as NeoX)."""
    doc_idx = np.tile(np.asarray(documents), num_epochs).astype(np.int32)
    # NeoX shuffles an int32 array; the permutation RandomState draws does not depend on the
    # dtype, but keep it identical anyway.
    np_rng.shuffle(doc_idx)
    return doc_idx


def build_sample_idx(
    sizes: np.ndarray, doc_idx: np.ndarray, seq_length: int, num_epochs: int, tokens_per_epoch: int
) -> np.ndarray:
    """(num_windows + 1, 2) int32: row i = (position in doc_idx, token offset) where window i
    starts; window i ends, inclusive, where window i + 1 starts.

    NeoX's helpers.cpp walks the documents greedily. Window i always spans the token positions
    [i * seq_length, (i + 1) * seq_length] of the concatenated doc_idx stream, so the same rows
    are found here by a binary search over the cumulative document lengths: identical output
    (tested against a port of the loop), at numpy speed for the paper's 147M samples.
    """
    num_samples = (num_epochs * int(tokens_per_epoch) - 1) // seq_length
    sizes = np.asarray(sizes)
    doc_idx = np.asarray(doc_idx)
    # Chunked, so the paper's scale (163M windows over 210M documents) needs only `starts`
    # and the output beside the inputs, not five more arrays of that length.
    step = 1 << 22
    starts = np.zeros(len(doc_idx) + 1, dtype=np.int64)
    total = 0
    for i in range(0, len(doc_idx), step):
        part = starts[i + 1 : i + 1 + step]
        np.cumsum(sizes[doc_idx[i : i + step]], dtype=np.int64, out=part)
        part += total
        total = int(part[-1])
    if starts[-1] < num_samples * seq_length + 1:
        raise DataOrderError(
            f"doc_idx holds {starts[-1]} tokens, fewer than the {num_samples * seq_length + 1} "
            f"that {num_samples} windows of {seq_length + 1} tokens need"
        )
    sample_idx = np.empty((num_samples + 1, 2), dtype=np.int32)
    for i in range(0, num_samples + 1, step):
        positions = np.arange(i, min(i + step, num_samples + 1), dtype=np.int64) * seq_length
        # the last document starting at or before each position (skips empty documents, as
        # the greedy loop does)
        doc = np.searchsorted(starts, positions, side="right") - 1
        sample_idx[i : i + len(doc), 0] = doc
        sample_idx[i : i + len(doc), 1] = positions - starts[doc]
    sample_idx[0] = (0, 0)  # the loop's fixed first row, even when document 0 is empty
    return sample_idx


def build_shuffle_idx(num_samples: int, total_size: int, np_rng: np.random.RandomState):
    """A permutation of [0, num_samples): uint32 unless that could overflow, as NeoX.

    `total_size` is NeoX v1.0's single size argument generalised as in later Megatron
    (shuffle the first num_samples and the rest separately); v1.0 passes num_samples ==
    total_size, which is one plain shuffle of the whole range.
    """
    dtype = np.uint32 if total_size < np.iinfo(np.uint32).max - 1 else np.int64
    first = np.arange(0, num_samples, dtype=dtype)
    np_rng.shuffle(first)
    if num_samples == total_size:
        return first
    last = np.arange(num_samples, total_size, dtype=dtype)
    np_rng.shuffle(last)
    return np.concatenate((first, last))


def index_map_names(name: str, num_samples: int, seq_length: int, seed: int) -> dict[str, str]:
    """GPT-NeoX's cache file names, e.g. `pile_..._train_0_indexmap_147164160ns_2048sl_1234s_
    doc_idx.npy` (the names of EleutherAI/pile-preshuffled-seeds)."""
    stem = f"{name}_train_0_indexmap_{num_samples}ns_{seq_length}sl_{seed}s"
    return {kind: f"{stem}_{kind}_idx.npy" for kind in ("doc", "sample", "shuffle")}


def _documents_fingerprint(ds: MMapIndexedDataset) -> str:
    """sha256 over the documents' .bin and .idx bytes (independent of their file names)."""
    return hashlib.sha256(
        (sha256_file(ds.bin_path) + sha256_file(ds.idx_path)).encode()
    ).hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _window(ds: MMapIndexedDataset, doc_idx, sample_idx, i: int) -> np.ndarray:
    """Tokens of window i: from (doc f, offset f) through (doc l, offset l) inclusive."""
    (doc_f, off_f), (doc_l, off_l) = sample_idx[i], sample_idx[i + 1]
    if doc_f == doc_l:
        return ds.get(int(doc_idx[doc_f]), offset=int(off_f), length=int(off_l - off_f + 1))
    parts = [ds.get(int(doc_idx[doc_f]), offset=int(off_f))]
    parts += [ds.get(int(doc_idx[j])) for j in range(doc_f + 1, doc_l)]
    parts.append(ds.get(int(doc_idx[doc_l]), length=int(off_l + 1)))
    return np.concatenate(parts)


def pack_samples(
    documents_prefix: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    seq_length: int,
    num_samples: int,
    seed: int,
    index_dir: str | os.PathLike | None = None,
    index_name_prefix: str | None = None,
    global_batch_size: int | None = None,
    producer: str | None = None,
) -> dict:
    """Write `<out_prefix>.bin/.idx` (row k = NeoX training sample k, seq_length + 1 tokens),
    the three NeoX index maps (.npy) and `<out_prefix>.json` metadata; return the metadata.

    `num_samples` is what NeoX is asked for (ceil(train_iters * batch * 1.005) in Pythia);
    exactly that many rows are written.
    """
    if seq_length < 2 or num_samples < 1:
        raise DataOrderError(
            f"need seq_length >= 2 and num_samples >= 1, got {seq_length}, {num_samples}"
        )
    ds = MMapIndexedDataset(documents_prefix)
    documents = np.arange(len(ds), dtype=np.int32)
    sizes = ds.sizes.astype(np.int32)
    tokens_per_epoch = int(sizes.astype(np.int64).sum())
    if len(ds) == 0 or tokens_per_epoch < 2:
        raise DataOrderError(f"{ds.idx_path}: no tokens to build {num_samples} samples from")
    epochs = num_epochs(tokens_per_epoch, seq_length, num_samples)
    np_rng = np.random.RandomState(seed=seed)
    doc_idx = build_doc_idx(documents, epochs, np_rng)
    sample_idx = build_sample_idx(sizes, doc_idx, seq_length, epochs, tokens_per_epoch)
    windows = sample_idx.shape[0] - 1
    shuffle_idx = build_shuffle_idx(windows, windows, np_rng)
    if windows < num_samples:  # cannot happen by construction of `epochs`; guard the contract
        raise DataOrderError(
            f"{ds.idx_path}: {epochs} epochs of {tokens_per_epoch} tokens give {windows} "
            f"samples, fewer than the {num_samples} requested"
        )

    bin_path, idx_path = prefix_paths(out_prefix)
    index_dir = Path(index_dir) if index_dir is not None else bin_path.parent
    name = index_name_prefix or prefix_paths(documents_prefix)[0].stem
    names = index_map_names(name, num_samples, seq_length, seed)
    for kind, array in (("doc", doc_idx), ("sample", sample_idx), ("shuffle", shuffle_idx)):
        _save_npy(index_dir / names[kind], array)

    with IndexedDatasetWriter(out_prefix, ds.dtype) as writer:
        for k in range(num_samples):
            row = _window(ds, doc_idx, sample_idx, int(shuffle_idx[k]))
            assert row.size == seq_length + 1
            writer.add_document(row)

    params = {"num_samples": num_samples, "seq_length": seq_length, "seed": seed}
    # the vocabulary the documents were tokenized with, when their producer recorded it:
    # training refuses a tokenizer of another size (ids past the embedding would crash later)
    doc_meta = Path(str(prefix_paths(documents_prefix)[0])[: -len(".bin")] + ".json")
    vocab = read_json(doc_meta).get("vocab_size") if doc_meta.exists() else None
    meta = {
        **params,
        "global_batch_size": global_batch_size,
        "epochs": epochs,
        "tokens_per_epoch": tokens_per_epoch,
        # windows start every seq_length tokens: how many samples one pass over the data makes
        "samples_per_epoch": tokens_per_epoch / seq_length,
        "samples_available": windows,
        "documents": len(ds),
        "dtype": ds.dtype.name,
        "vocab_size": vocab,
        "documents_fingerprint": _documents_fingerprint(ds),
        "index_maps": {kind: str(index_dir / n) for kind, n in names.items()},
        "fingerprint": fingerprint([bin_path, idx_path], params),
        # checked by training before use (io.verify_files); `producer` is the rule to rerun
        "files": {p.name: file_digest(p) for p in (bin_path, idx_path)},
        "producer": producer,
    }
    write_json(Path(str(bin_path)[: -len(".bin")] + ".json"), meta)
    return meta
