"""The training data: the pre-shuffled sample file, the tokenizer it was made with, the rows each
step reads, and an optional token map applied to them.

Optimizer step s (1-based) consumes rows [(s-1)·B, s·B) of the sample file; data-parallel rank r
takes the r-th contiguous slice of that global batch (reference/pythia.md §2, §3.4).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workflow.core.config import TrainingSpec
from workflow.core.io import fingerprint, read_json, verify_files
from workflow.data.indexed_dataset import MMapIndexedDataset, prefix_paths
from workflow.train.errors import TrainingError


def _meta_path(samples_prefix: str | os.PathLike) -> Path:
    """`<prefix>.json`: what the sample file's producer recorded about it."""
    bin_path, _ = prefix_paths(samples_prefix)
    return Path(str(bin_path)[: -len(".bin")] + ".json")


def data_fingerprint(samples_prefix: str | os.PathLike) -> str:
    """The sample file's fingerprint: the one its producer recorded in `<prefix>.json`, else the
    sha256 of its bytes (slow for big files, hence the producer's record is preferred)."""
    bin_path, idx_path = prefix_paths(samples_prefix)
    meta = _meta_path(samples_prefix)
    if meta.exists():
        recorded = read_json(meta).get("fingerprint")
        if recorded:
            return str(recorded)
    return fingerprint([idx_path, bin_path], {})


def check_samples(samples_prefix: str | os.PathLike) -> None:
    """Refuse a sample file whose bytes are not the ones its producer wrote (the digests in
    `<prefix>.json`): a damaged file would train silently on other rows."""
    bin_path, _ = prefix_paths(samples_prefix)
    meta_path = _meta_path(samples_prefix)
    meta = read_json(meta_path) if meta_path.exists() else {}
    verify_files(
        bin_path.parent,
        meta.get("files"),
        record=meta_path,
        rule=meta.get("producer") or "pack_shuffle",
    )


def open_samples(
    samples_prefix: str | os.PathLike, training: TrainingSpec, end_step: int
) -> MMapIndexedDataset:
    """The checked sample file, refused when it is too short for `end_step` or its rows are not
    seq_length + 1 tokens."""
    check_samples(samples_prefix)
    data = MMapIndexedDataset(samples_prefix)
    b, seq = training.global_batch_size, training.seq_length
    if len(data) < end_step * b:
        raise TrainingError(
            f"{samples_prefix}: {len(data)} samples, step {end_step} needs {end_step * b}"
        )
    if len(data) and int(data.sizes[0]) != seq + 1:
        raise TrainingError(
            f"{samples_prefix}: rows have {int(data.sizes[0])} tokens, training.seq_length "
            f"{seq} needs {seq + 1}"
        )
    return data


def tokenizer_vocab_size(tokenizer_path: str | os.PathLike) -> int:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(tokenizer_path)).get_vocab_size(with_added_tokens=True)
    except Exception as e:  # tokenizers raises a bare Exception for unreadable files
        raise TrainingError(f"{tokenizer_path}: cannot read tokenizer: {e}") from None


def check_vocab(
    data: MMapIndexedDataset,
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    vocab: int,
    *,
    first_step: int,
    batch: int,
) -> None:
    """Refuse a tokenizer that does not match the data before any compute: by the vocabulary
    the data's producer recorded, and by the token ids of the first step to be trained."""
    bin_path, _ = prefix_paths(samples_prefix)
    meta_path = _meta_path(samples_prefix)
    recorded = read_json(meta_path).get("vocab_size") if meta_path.exists() else None
    if recorded is not None and recorded != vocab:
        raise TrainingError(
            f"{tokenizer_path}: a vocabulary of {vocab} tokens, but {meta_path} says the "
            f"samples were tokenized with {recorded}: tokenizer and data do not match"
        )
    lo, hi = (first_step - 1) * batch, min(first_step * batch, len(data))
    if hi > lo:
        top = int(data.get_rows(lo, hi).max())
        if top >= vocab:
            raise TrainingError(
                f"{bin_path}: token id {top} in rows [{lo}, {hi}) is outside the tokenizer's "
                f"vocabulary of {vocab} ({tokenizer_path}): tokenizer and data do not match"
            )


def step_rows(step: int, batch: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows of the sample file that `rank` trains on in optimizer step `step` (1-based)."""
    per_rank = batch // world_size
    start = (step - 1) * batch + rank * per_rank
    return start, start + per_rank


# --------------------------------------------------------------------------- token maps


def token_lut(token_map: Mapping[str, Any], vocab_size: int, *, source: str = "") -> np.ndarray:
    """A lookup table over the vocabulary (rows = lut[rows]) from a token map: identity except
    each of `token_map["pairs"]`, whose `from_id` becomes `to_id`. An optional
    `token_map["vocab_size"]` names the vocabulary the ids belong to; a larger one than the
    model's is refused."""
    where = f"{source}: " if source else ""
    if token_map.get("vocab_size", 0) > vocab_size:
        raise TrainingError(
            f"{where}a token map of a {token_map['vocab_size']}-token vocabulary for a model of "
            f"{vocab_size}"
        )
    lut = np.arange(vocab_size, dtype=np.int64)
    for p in token_map["pairs"]:
        lut[p["from_id"]] = p["to_id"]
    return lut


def read_token_map(path: str | os.PathLike, vocab_size: int) -> np.ndarray:
    """The lookup table of a token-map file: JSON `{"vocab_size": V, "pairs": [{"from_id": a,
    "to_id": b}, ...]}` (other keys are ignored; the intervention's swap map is one)."""
    return token_lut(read_json(path), vocab_size, source=str(path))
