"""Reading corpus files: .jsonl or .jsonl.zst, one {"text": ..., "meta": ...} object a line.

Every stage that numbers documents (tokenize, dedup signatures, the corpus from shards, the
choice tasks) reads through `read_jsonl` or `parse_jsonl_line`, so they skip the same empty
documents and document i means the same text everywhere. The dedup scatter and the parallel
tokenizer read byte ranges of a plain .jsonl (`byte_ranges`, `iter_lines_in_range`) without an
index; an error names the file and the line.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import zstandard

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """A malformed corpus file; the message names the file and line."""


def _open_lines(path: Path):
    """Binary line iterator over a .jsonl or .jsonl.zst file (streamed, never all in RAM)."""
    raw = open(path, "rb")
    if path.name.endswith(".zst"):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)
    return raw


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield (line_number, raw bytes) of a .jsonl or .jsonl.zst file; line numbers from 1."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    line_no = 0
    try:
        with _open_lines(path) as f:
            for line_no, raw in enumerate(f, start=1):  # noqa: B007 (used after the loop)
                yield line_no, raw
    except zstandard.ZstdError as e:  # a corrupt or truncated frame: name the place
        raise CorpusError(f"{path}: after line {line_no}: not valid zstd: {e}") from None
    except OSError as e:
        raise CorpusError(f"{path}: after line {line_no}: cannot read: {e}") from None


def byte_ranges(path: str | os.PathLike, num_shards: int) -> list[tuple[int, int]]:
    """Split a plain .jsonl into `num_shards` byte ranges; a line belongs to the range that
    holds its first byte, so shards need no index and no pass over the file."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    size = Path(path).stat().st_size
    bounds = [size * k // num_shards for k in range(num_shards + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def iter_lines_in_range(path: str | os.PathLike, lo: int, hi: int) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset, raw line) of the lines starting in [lo, hi)."""
    with open(path, "rb") as f:
        if lo > 0:
            f.seek(lo - 1)
            if f.read(1) != b"\n":  # lo is inside a line: it belongs to the previous shard
                f.readline()
        while (pos := f.tell()) < hi:
            raw = f.readline()
            if not raw:
                return
            yield pos, raw


def line_number_at(path: str | os.PathLike, offset: int) -> int:
    """1-based number of the line starting at `offset` (only computed for error messages)."""
    with open(path, "rb") as f:
        count, done = 0, 0
        while done < offset:
            block = f.read(min(1 << 24, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count + 1


def parse_jsonl_line(path, line_no: int, raw: bytes, *, skip_empty: bool = True) -> dict | None:
    """The record of one line, or None for a blank line or (when `skip_empty`) an empty text.

    Raises CorpusError naming `path:line_no` for bytes that are not UTF-8, invalid JSON, or a
    record without a string "text" field."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path}:{line_no}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
        ) from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}:{line_no}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise CorpusError(f'{path}:{line_no}: expected an object with a string "text" field')
    if skip_empty and not record["text"].strip():
        return None
    return record


def read_jsonl(
    path: str | os.PathLike, *, skip_empty: bool = True, counts: dict | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, record) for each document of a .jsonl or .jsonl.zst file.

    Line numbers start at 1. Blank lines are ignored. A record whose text is empty (or only
    whitespace) is skipped when `skip_empty` and counted in `counts["empty_skipped"]`: every
    stage that numbers documents (tokenize, dedup) reads through here or through
    `parse_jsonl_line`, so document ids agree.
    """
    if counts is not None:
        counts.setdefault("empty_skipped", 0)
    skipped = 0
    for line_no, raw in iter_jsonl_lines(path):
        record = parse_jsonl_line(path, line_no, raw, skip_empty=skip_empty)
        if record is None:
            if raw.strip():
                skipped += 1
                if counts is not None:
                    counts["empty_skipped"] += 1
            continue
        yield line_no, record
    if skipped:
        log.warning("%s: skipped %d empty document(s)", Path(path), skipped)
