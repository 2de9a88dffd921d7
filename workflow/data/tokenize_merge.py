"""The tokenized shards joined into one dataset (rule `tokenize_merge`), as GPT-NeoX's
`tools/merge_datasets.py` does: the `.bin` files concatenated, one `.idx` rewritten (byte
pointers offset by the bytes before each shard, its document index by the sequences before it).

The result is byte for byte what one `tokenize` job over the whole corpus writes (tested for
1, 3 and 7 shards). Memory is one shard's index at a time, whatever the corpus size.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from workflow.core.io import fault_point, remove_stale_temps, write_json
from workflow.data.indexed_dataset import (
    IndexedDatasetError,
    MMapIndexedDataset,
    index_header,
    prefix_paths,
)

log = logging.getLogger(__name__)

_COPY = 16 << 20
SUMMED = ("documents", "tokens", "empty_skipped", "eod_appended")
SHARED = ("vocab_size", "dtype")


def _open_shards(prefixes) -> list[MMapIndexedDataset]:
    if not prefixes:
        raise ValueError("no tokenized shards to merge")
    shards = [MMapIndexedDataset(p) for p in prefixes]  # each checked: .idx against .bin
    dtype = shards[0].dtype
    for ds in shards[1:]:
        if ds.dtype != dtype:
            raise IndexedDatasetError(
                f"{ds.idx_path}: tokens are {ds.dtype}, {shards[0].idx_path} has {dtype}: "
                "the shards were tokenized with different tokenizers; rebuild them"
            )
    return shards


def _write_idx(f, shards: list[MMapIndexedDataset]) -> None:
    """Header, then sizes, pointers and doc_idx, each streamed shard by shard."""
    n = sum(len(ds) for ds in shards)
    m = 1 + sum(len(ds.doc_idx) - 1 for ds in shards)
    f.write(index_header(shards[0].dtype, n, m))
    for ds in shards:
        f.write(np.asarray(ds.sizes, np.int32).tobytes())
    offset = 0
    for ds in shards:
        f.write((np.asarray(ds.pointers, np.int64) + offset).tobytes())
        offset += ds.bin_path.stat().st_size
    f.write(np.zeros(1, np.int64).tobytes())
    before = 0
    for ds in shards:
        f.write((np.asarray(ds.doc_idx[1:], np.int64) + before).tobytes())
        before += len(ds)


def merge_tokenized(prefixes, out_prefix: str | os.PathLike) -> dict:
    """Concatenate the tokenized shards `prefixes` (in order) into `<out_prefix>.bin/.idx`;
    both appear only when complete (the `.idx` last, as `IndexedDatasetWriter` does)."""
    shards = _open_shards([str(p) for p in prefixes])
    bin_out, idx_out = prefix_paths(out_prefix)
    bin_out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(bin_out)
    remove_stale_temps(idx_out)
    tmp_bin = bin_out.with_name(f".{bin_out.name}.{os.getpid()}.tmp")
    tmp_idx = idx_out.with_name(f".{idx_out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp_bin, "wb") as out:
            for ds in shards:
                with open(ds.bin_path, "rb") as src:
                    shutil.copyfileobj(src, out, _COPY)
        with open(tmp_idx, "wb") as f:
            _write_idx(f, shards)
        fault_point(bin_out)
        idx_out.unlink(missing_ok=True)
        os.replace(tmp_bin, bin_out)
        os.replace(tmp_idx, idx_out)
    except BaseException:
        tmp_bin.unlink(missing_ok=True)
        tmp_idx.unlink(missing_ok=True)
        raise
    merged = MMapIndexedDataset(out_prefix)  # the pair checks itself on opening
    log.info("%s: %d shards, %d sequences", out_prefix, len(shards), len(merged))
    return {"shards": len(shards), "sequences": len(merged), "bytes": bin_out.stat().st_size}


def merge_stats(stats_paths, out_path: str | os.PathLike) -> dict:
    """The shards' `tokenize` stats as one job's: counts summed, vocabulary and dtype shared."""
    stats = [json.loads(Path(p).read_text()) for p in stats_paths]
    if not stats:
        raise ValueError("no tokenize stats to merge")
    merged = {k: sum(s[k] for s in stats) for k in SUMMED}
    for k in SHARED:
        values = {s[k] for s in stats}
        if len(values) != 1:
            raise ValueError(f"the tokenized shards disagree on {k}: {sorted(map(str, values))}")
        merged[k] = values.pop()
    if not merged["documents"]:
        raise ValueError("the tokenized shards hold no documents (empty corpus)")
    write_json(out_path, merged)
    return merged
