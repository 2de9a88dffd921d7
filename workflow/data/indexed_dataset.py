"""Megatron / GPT-NeoX MMapIndexedDataset: the `.bin` + `.idx` token file format.

Byte-compatible with GPT-NeoX's `megatron/data/indexed_dataset.py` and Pythia's
`utils/mmap_dataset.py`:

    .idx  magic b"MMIDIDX\\x00\\x00" | u64 version=1 | u8 dtype code | u64 n_sequences |
          u64 n_doc_idx | int32 sizes[n] | int64 byte pointers[n] | int64 doc_idx[m]
    .bin  the token ids of every sequence, concatenated, in the dtype of the code

A pre-shuffled sample file is the same format with every entry `seq_length + 1` tokens long.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, fault_point, remove_stale_temps

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float32,  # as GPT-NeoX v1.0 and Pythia read code 6
    7: np.float64,
    8: np.uint16,
}
CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float32): 6,
    np.dtype(np.float64): 7,
    np.dtype(np.uint16): 8,
}
_HEADER = len(MAGIC) + 8 + 1 + 8 + 8


class IndexedDatasetError(ValueError):
    """A malformed or inconsistent .bin/.idx pair; the message names the file and offset."""


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits (as GPT-NeoX's best_fitting_dtype), else int32."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def prefix_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    prefix = str(prefix)
    for ext in (".bin", ".idx"):
        if prefix.endswith(ext):
            prefix = prefix[: -len(ext)]
    return Path(prefix + ".bin"), Path(prefix + ".idx")


class IndexedDatasetWriter:
    """Streams sequences into `<prefix>.bin` and writes `<prefix>.idx` on `finalize`.

    Both files are written under temporary names and renamed into place only when complete
    (an old `.idx` is removed first, so a kill between the two renames leaves no pair that
    looks complete). Use as a context manager: an exception discards the partial files.
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype | type = np.uint16):
        self.bin_path, self.idx_path = prefix_paths(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in CODES:
            raise IndexedDatasetError(f"{self.bin_path}: unsupported dtype {self.dtype}")
        self.bin_path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.bin_path)  # a killed writer's
        remove_stale_temps(self.idx_path)
        self._tmp_bin = self.bin_path.with_name(f".{self.bin_path.name}.{os.getpid()}.tmp")
        self._tmp_idx = self.idx_path.with_name(f".{self.idx_path.name}.{os.getpid()}.tmp")
        self._file = open(self._tmp_bin, "wb")
        self.sizes: list[int] = []
        self.doc_idx: list[int] = [0]
        self._info = np.iinfo(self.dtype) if self.dtype.kind in "iu" else None

    def add_item(self, tokens: Iterable[int] | np.ndarray) -> None:
        arr = np.asarray(tokens)
        if self._info is not None and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < self._info.min or hi > self._info.max:
                raise IndexedDatasetError(
                    f"{self.bin_path}: token id {hi if hi > self._info.max else lo} of sequence "
                    f"{len(self.sizes)} does not fit {self.dtype}"
                )
        self._file.write(arr.astype(self.dtype, copy=False).tobytes(order="C"))
        self.sizes.append(int(arr.size))

    def end_document(self) -> None:
        self.doc_idx.append(len(self.sizes))

    def add_document(self, tokens: Iterable[int] | np.ndarray) -> None:
        self.add_item(tokens)
        self.end_document()

    def add_documents(self, tokens: np.ndarray, sizes: np.ndarray) -> None:
        """Many one-sequence documents at once: `tokens` is their concatenation, `sizes` the
        length of each (as `add_document` for each, in one write)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        tokens = np.asarray(tokens)
        if int(sizes.sum()) != tokens.size:
            raise ValueError(f"sizes sum to {int(sizes.sum())} but there are {tokens.size} tokens")
        self.add_item(tokens)
        self.sizes.pop()  # add_item counted one sequence; record each document instead
        first = len(self.sizes)
        self.sizes.extend(sizes.tolist())
        self.doc_idx.extend(range(first + 1, len(self.sizes) + 1))

    def finalize(self) -> None:
        try:
            self._file.close()
            with open(self._tmp_idx, "wb") as f:
                _write_index(f, self.dtype, np.asarray(self.sizes, np.int32), self.doc_idx)
            fault_point(self.bin_path)
            self.idx_path.unlink(missing_ok=True)
            os.replace(self._tmp_bin, self.bin_path)
            os.replace(self._tmp_idx, self.idx_path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._file.close()
        self._tmp_bin.unlink(missing_ok=True)
        self._tmp_idx.unlink(missing_ok=True)

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()


def index_header(dtype: np.dtype, sequences: int, doc_idx_entries: int) -> bytes:
    """The fixed-size head of an `.idx`: magic, version, dtype code and the two counts."""
    return (
        MAGIC
        + struct.pack("<Q", VERSION)
        + struct.pack("<B", CODES[np.dtype(dtype)])
        + struct.pack("<QQ", sequences, doc_idx_entries)
    )


def _write_index(f, dtype: np.dtype, sizes: np.ndarray, doc_idx) -> None:
    sizes = np.asarray(sizes, dtype=np.int32)
    pointers = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    doc_idx = np.asarray(doc_idx, dtype=np.int64)
    f.write(index_header(dtype, len(sizes), len(doc_idx)))
    f.write(sizes.tobytes(order="C"))
    f.write(pointers.tobytes(order="C"))
    f.write(doc_idx.tobytes(order="C"))


def write_index(idx_path: Path, dtype: np.dtype, sizes: np.ndarray, doc_idx) -> None:
    with atomic_path(idx_path) as tmp, open(tmp, "wb") as f:
        _write_index(f, dtype, sizes, doc_idx)


def write_indexed_dataset(prefix: str | os.PathLike, sequences: Iterable, dtype=np.uint16) -> None:
    """Write each sequence as one document."""
    with IndexedDatasetWriter(prefix, dtype) as w:
        for seq in sequences:
            w.add_document(seq)


def _parse_header(path: Path) -> tuple[np.dtype, int, int]:
    """(token dtype, sequences, doc_idx entries) from an .idx header, checked."""
    with open(path, "rb") as f:
        head = f.read(_HEADER)
    if len(head) < _HEADER or head[: len(MAGIC)] != MAGIC:
        raise IndexedDatasetError(
            f"{path}: not an MMapIndexedDataset index (bad magic at offset 0: "
            f"{head[: len(MAGIC)]!r}, expected {MAGIC!r})"
        )
    (version,) = struct.unpack("<Q", head[9:17])
    if version != VERSION:
        raise IndexedDatasetError(f"{path}: unsupported index version {version} at offset 9")
    (code,) = struct.unpack("<B", head[17:18])
    if code not in DTYPES:
        raise IndexedDatasetError(f"{path}: unknown dtype code {code} at offset 17")
    n, m = struct.unpack("<QQ", head[18:34])
    return np.dtype(DTYPES[code]), n, m


class MMapIndexedDataset:
    """Memory-mapped reader. `ds[i]` is sequence i; `ds.get_rows(a, b)` the (b-a, L) block
    of a fixed-length sample file (one contiguous read)."""

    def __init__(self, prefix: str | os.PathLike):
        self._open(*prefix_paths(prefix))

    @classmethod
    def from_paths(cls, bin_path: str | os.PathLike, idx_path: str | os.PathLike):
        """Open a pair whose names do not share a prefix (e.g. temporary files)."""
        self = cls.__new__(cls)
        self._open(Path(bin_path), Path(idx_path))
        return self

    @staticmethod
    def read_dtype(idx_path: str | os.PathLike) -> np.dtype:
        """The token dtype an `.idx` declares (its header only)."""
        return _parse_header(Path(idx_path))[0]

    def _open(self, bin_path: Path, idx_path: Path) -> None:
        self.bin_path, self.idx_path = bin_path, idx_path
        for p in (self.bin_path, self.idx_path):
            if not p.exists():
                raise IndexedDatasetError(f"{p}: no such file")
        self._read_index()
        self._bin = np.memmap(self.bin_path, dtype=np.uint8, mode="r") if self._bin_bytes else None

    def _read_index(self) -> None:
        path = self.idx_path
        size = path.stat().st_size
        self.dtype, n, m = _parse_header(path)
        need = _HEADER + n * 4 + n * 8 + m * 8
        if size != need:
            raise IndexedDatasetError(
                f"{path}: {size} bytes but the header announces {n} sequences and {m} doc_idx "
                f"entries ({need} bytes); the file is truncated or corrupt"
            )
        idx = np.memmap(path, dtype=np.uint8, mode="r")
        self.sizes = np.frombuffer(idx, np.int32, n, _HEADER)
        self.pointers = np.frombuffer(idx, np.int64, n, _HEADER + n * 4)
        self.doc_idx = np.frombuffer(idx, np.int64, m, _HEADER + n * 12)
        # O(1), not a pass over the sizes: opening a 147M-row sample file stays instant
        total = int(self.pointers[-1]) + int(self.sizes[-1]) * self.dtype.itemsize if n else 0
        self._bin_bytes = self.bin_path.stat().st_size
        if self._bin_bytes != total:
            raise IndexedDatasetError(
                f"{self.bin_path}: {self._bin_bytes} bytes but {self.idx_path.name} describes "
                f"{total} bytes of tokens; the .bin is truncated or belongs to another index"
            )

    def __len__(self) -> int:
        return len(self.sizes)

    def get(self, i: int, offset: int = 0, length: int | None = None) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.bin_path}: sequence {i} out of range (have {len(self)})")
        size = int(self.sizes[i])
        length = size - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > size:
            raise IndexError(
                f"{self.bin_path}: tokens [{offset}, {offset + length}) of sequence {i} out of "
                f"range (it has {size})"
            )
        start = int(self.pointers[i]) + offset * self.dtype.itemsize
        return (
            np.frombuffer(self._bin, self.dtype, length, start)
            if length
            else np.empty(0, self.dtype)
        )

    def __getitem__(self, i: int) -> np.ndarray:
        return self.get(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self.get(i)

    @property
    def num_tokens(self) -> int:
        return int(self.sizes.astype(np.int64).sum())

    def get_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a file whose entries all have the same length."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(
                f"{self.bin_path}: rows [{start}, {stop}) out of range (have {len(self)})"
            )
        if stop == start:
            return np.empty((0, int(self.sizes[0]) if len(self) else 0), self.dtype)
        width = int(self.sizes[start])
        if np.any(self.sizes[start:stop] != width):
            raise IndexedDatasetError(f"{self.bin_path}: rows [{start}, {stop}) differ in length")
        flat = np.frombuffer(
            self._bin, self.dtype, (stop - start) * width, int(self.pointers[start])
        )
        return flat.reshape(stop - start, width)
