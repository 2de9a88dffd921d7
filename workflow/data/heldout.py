"""The held-out split of a raw Pile-style source (config `data.source: pile_jsonl`, rule
`heldout`): the last documents of the last raw shard, read streaming.

The per-shard jobs of that shard (`shards.CorpusShard.heldout_tail`) leave the same documents
out, so the split is a pure function of the shard's bytes: no job concatenates the corpus.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

from workflow.core.io import atomic_path
from workflow.data.jsonl import CorpusError, read_jsonl


def split_heldout(
    last_shard: str | os.PathLike, heldout_out: str | os.PathLike, heldout_documents: int
) -> dict:
    """Write the last `heldout_documents` documents of `last_shard` to `heldout_out` (jsonl,
    one record a line); the shard must hold more documents than that."""
    path = Path(last_shard)
    if heldout_documents < 1:
        raise ValueError(f"heldout_documents must be >= 1, got {heldout_documents}")
    counts = {"empty_skipped": 0}
    # only the trailing window is held in memory, the rest of the shard streams by
    tail: collections.deque[str] = collections.deque(maxlen=heldout_documents)
    documents = 0
    for _, record in read_jsonl(path, counts=counts):
        tail.append(json.dumps(record, ensure_ascii=False))
        documents += 1
    if documents <= heldout_documents:
        raise CorpusError(
            f"{path}: {documents} documents in the last shard; need more than the "
            f"{heldout_documents} held out (data.pile.heldout_documents)"
        )
    with atomic_path(heldout_out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for line in tail:
            f.write(line + "\n")
    return {
        "shard": str(path),
        "shard_documents": documents,
        "train_documents_of_shard": documents - heldout_documents,
        "heldout_documents": heldout_documents,
        "empty_skipped": counts["empty_skipped"],
    }
