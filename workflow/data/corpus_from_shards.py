"""The corpus of a raw Pile-style source (config `data.source: pile_jsonl`, rule `corpus`): the
downloaded shards joined into one training jsonl, with the last documents held out.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

from workflow.core.io import atomic_path
from workflow.data.jsonl import CorpusError, read_jsonl


def concat_jsonl(
    paths, train_out: str | os.PathLike, heldout_out: str | os.PathLike, heldout_documents: int
) -> dict:
    """Stream the shards, in the given order, into one training jsonl; the last
    `heldout_documents` documents go to the held-out jsonl instead. Empty documents are dropped
    (as every later stage would skip them)."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
    if heldout_documents < 0:
        raise ValueError(f"heldout_documents must be >= 0, got {heldout_documents}")
    counts = {"empty_skipped": 0}
    # Only the trailing window is held back in memory: the rest streams straight through.
    tail: collections.deque[str] = collections.deque()
    train = 0
    with atomic_path(train_out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for path in paths:
            for _, record in read_jsonl(path, counts=counts):
                tail.append(json.dumps(record, ensure_ascii=False))
                if len(tail) > heldout_documents:
                    f.write(tail.popleft() + "\n")
                    train += 1
        if train == 0:
            raise CorpusError(
                f"{', '.join(map(str, paths))}: {len(tail)} documents in all; need more than "
                f"the {heldout_documents} held out"
            )
    with atomic_path(heldout_out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for line in tail:
            f.write(line + "\n")
    return {
        "shards": len(paths),
        "train_documents": train,
        "heldout_documents": len(tail),
        "empty_skipped": counts["empty_skipped"],
    }
