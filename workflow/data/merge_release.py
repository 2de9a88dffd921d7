"""A release's byte shards merged into one checked Megatron dataset (rule `merge_release`).

Shards are byte slices of the merged `.bin` (Pythia's `utils/unshard_memmap.py` concatenates
them), so a shard may end mid-token; the merged file is checked against the published sha256
where there is one, and the `.idx` against the data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, sha256_file, write_json
from workflow.core.releases import ReleaseError
from workflow.data.indexed_dataset import MMapIndexedDataset, prefix_paths

_CHUNK = 16 << 20


def merge_shards(
    shard_paths,
    idx_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    row_length: int | None = None,
) -> dict:
    """Concatenate the byte shards into `<out_prefix>.bin`, put the `.idx` beside it, and check
    the pair: the merged sha256 (if published), the index against the data, and (for sample
    files) every row's length. Counts token ids 0 (<|endoftext|>) and 1 (<|padding|>) on the
    way, since whether the released data has EOD tokens is an open question (pythia#175).
    Nothing is left at `out_prefix` unless every check passes."""
    bin_out, idx_out = prefix_paths(out_prefix)
    shard_paths = [Path(p) for p in shard_paths]
    for p in [*shard_paths, Path(idx_path)]:
        if not p.is_file():
            raise ReleaseError(f"{p}: no such file")
    idx_dtype = MMapIndexedDataset.read_dtype(idx_path)
    itemsize = np.dtype(idx_dtype).itemsize
    counts = np.zeros(2, dtype=np.int64)
    h = hashlib.sha256()
    carry = b""
    with atomic_path(bin_out) as tmp_bin, atomic_path(idx_out) as tmp_idx:
        with open(tmp_bin, "wb") as out:
            for p in shard_paths:
                with open(p, "rb") as f:
                    while block := f.read(_CHUNK):
                        out.write(block)
                        h.update(block)
                        data = carry + block  # a shard may end mid-token
                        whole = len(data) - len(data) % itemsize
                        tokens = np.frombuffer(data[:whole], dtype=idx_dtype)
                        counts += np.bincount(np.minimum(tokens, 2), minlength=3)[:2]
                        carry = data[whole:]
        digest = h.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise ReleaseError(
                f"{bin_out}: merged sha256 {digest} differs from the published "
                f"{expected_sha256}: a shard is corrupt or missing"
            )
        shutil.copyfile(idx_path, tmp_idx)
        try:
            ds = MMapIndexedDataset.from_paths(tmp_bin, tmp_idx)
        except ValueError as e:
            raise ReleaseError(f"{idx_path} does not index the merged shards: {e}") from None
        if row_length is not None and len(ds):
            bad = np.flatnonzero(ds.sizes != row_length)
            if bad.size:
                raise ReleaseError(
                    f"{idx_path}: row {int(bad[0])} has {int(ds.sizes[bad[0]])} tokens, "
                    f"training.seq_length + 1 = {row_length}: the config's seq_length does "
                    "not match the released data"
                )
        meta = {
            "shards": len(shard_paths),
            "bytes": tmp_bin.stat().st_size,
            "sha256": digest,
            "idx_sha256": sha256_file(tmp_idx),
            "sequences": len(ds),
            "documents": len(ds.doc_idx) - 1,
            "tokens": ds.num_tokens,
            "dtype": np.dtype(idx_dtype).name,
            "eod_tokens": int(counts[0]),
            "padding_tokens": int(counts[1]),
        }
        del ds
    return meta


def write_merge_meta(out_prefix: str | os.PathLike, meta: dict, extra: dict) -> dict:
    """`<out_prefix>.json`: the merge's record; `fingerprint` is what training checks."""
    full = {**extra, **meta}
    full["fingerprint"] = hashlib.sha256(
        f"{meta['sha256']} {meta['idx_sha256']} {extra.get('seq_length')}".encode()
    ).hexdigest()
    write_json(Path(str(prefix_paths(out_prefix)[0])[: -len(".bin")] + ".json"), full)
    return full
