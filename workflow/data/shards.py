"""The corpus as shards: which documents each per-shard job (`tokenize`, `dedup_signatures`)
reads. No job concatenates the corpus.

A shard is either one byte range of a plain .jsonl (the generated corpus, split into `parts`
ranges; a line belongs to the range that holds its first byte) or one whole source file, a
raw Pile shard (.jsonl.zst) read streaming. The held-out split is the last `heldout_documents`
documents of the last source file (`heldout.py` writes them): the jobs of that shard leave
them out, so they are never training documents.

Document ids are global: the documents of shard 0 in file order, then those of shard 1, ...,
empty texts skipped (`jsonl.parse_jsonl_line`). Every per-shard job reads through here, so
document i of the merged tokenized dataset is row i of the joined dedup signatures.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from workflow.data.jsonl import (
    CorpusError,
    byte_ranges,
    iter_jsonl_lines,
    iter_lines_in_range,
    line_number_at,
    parse_jsonl_line,
)


@dataclass(frozen=True)
class CorpusShard:
    """Shard `index` of `count`: byte range `part` of `parts` of `path` (a whole file when
    parts == 1), less its last `heldout_tail` documents."""

    path: str
    index: int = 0
    count: int = 1
    part: int = 0
    parts: int = 1
    heldout_tail: int = 0

    @property
    def by_offset(self) -> bool:
        """Lines are located by byte offset (a byte range), else by line number."""
        return self.parts > 1

    def byte_range(self) -> tuple[int, int] | None:
        """[lo, hi) of a plain file's range; None for a whole file."""
        if self.parts == 1:
            return None
        return byte_ranges(self.path, self.parts)[self.part]

    def name(self) -> str:
        return f"{self.path} (shard {self.index} of {self.count})"


def corpus_shards(
    paths: Sequence[str | os.PathLike], parts: int = 1, heldout_documents: int = 0
) -> list[CorpusShard]:
    """The shards of a corpus: each file split into `parts` byte ranges (plain .jsonl only),
    the last `heldout_documents` documents of the last file held out (a whole file only)."""
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("a corpus needs at least one file")
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    if parts > 1 and any(p.endswith(".zst") for p in paths):
        raise ValueError("a compressed (.zst) file cannot be split into byte ranges: parts = 1")
    if heldout_documents and parts > 1:
        raise ValueError("documents are held out of whole files only: parts = 1")
    count = len(paths) * parts
    return [
        CorpusShard(
            path=path,
            index=f * parts + k,
            count=count,
            part=k,
            parts=parts,
            heldout_tail=heldout_documents if f == len(paths) - 1 else 0,
        )
        for f, path in enumerate(paths)
        for k in range(parts)
    ]


def shard_lines(shard: CorpusShard) -> Iterator[tuple[int, bytes]]:
    """(where, raw line) of the shard's lines, the held-out tail left out; `where` is a byte
    offset when `shard.by_offset`, else a line number. Lines are not parsed unless a tail is
    held out (it counts documents, not lines)."""
    path = Path(shard.path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    rng = shard.byte_range()
    lines = iter_lines_in_range(path, *rng) if rng else iter_jsonl_lines(path)
    if not shard.heldout_tail:
        yield from lines
        return
    tail: collections.deque[tuple[int, bytes]] = collections.deque()
    for where, raw in lines:
        if parse_jsonl_line(path, where, raw) is None:  # blank or empty: skipped by all
            yield where, raw
            continue
        tail.append((where, raw))
        if len(tail) > shard.heldout_tail:
            yield tail.popleft()
    if len(tail) < shard.heldout_tail:
        raise CorpusError(
            f"{path}: {len(tail)} documents, fewer than the {shard.heldout_tail} held out of "
            "the last shard (data.pile.heldout_documents)"
        )


def parse_line(shard: CorpusShard, where: int, raw: bytes) -> dict | None:
    """`parse_jsonl_line`, the error naming the line also when `where` is a byte offset."""
    try:
        return parse_jsonl_line(shard.path, where, raw)
    except CorpusError:
        if shard.by_offset:  # re-raise naming the real line (counted only on failure)
            parse_jsonl_line(shard.path, line_number_at(shard.path, where), raw)
        raise


def shard_texts(shard: CorpusShard, counts: dict) -> Iterator[str]:
    """The texts of the shard's documents, in order; counts["documents"] and
    counts["empty_skipped"] are incremented as they are read."""
    for where, raw in shard_lines(shard):
        record = parse_line(shard, where, raw)
        if record is None:
            counts["empty_skipped"] += bool(raw.strip())
            continue
        counts["documents"] += 1
        yield record["text"]
