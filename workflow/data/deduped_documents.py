"""The deduped variant's documents (rule `deduped_documents`): the kept subset of the standard
variant's tokenized documents, and what dedup removed beside the paper's 334B -> 207B tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from workflow.data.indexed_dataset import IndexedDatasetWriter, MMapIndexedDataset


def select_documents(
    documents_prefix: str | os.PathLike, kept_ids, out_prefix: str | os.PathLike
) -> dict:
    """Copy the kept documents of a tokenized dataset, in order, into `<out_prefix>.bin/.idx`."""
    ds = MMapIndexedDataset(documents_prefix)
    kept = np.asarray(kept_ids, dtype=np.int64)
    if kept.ndim != 1:
        raise ValueError(f"kept_ids must be one-dimensional, got shape {kept.shape}")
    if kept.size and (kept[0] < 0 or kept[-1] >= len(ds) or np.any(np.diff(kept) <= 0)):
        raise ValueError(
            f"kept_ids must be strictly increasing ids in [0, {len(ds)}) of {ds.idx_path}; got "
            f"range [{kept.min()}, {kept.max()}]: was the dedup run on another corpus?"
        )
    with IndexedDatasetWriter(out_prefix, ds.dtype) as writer:
        for i in kept:
            writer.add_document(ds[int(i)])
    tokens_out = int(ds.sizes[kept].astype(np.int64).sum()) if kept.size else 0
    stats = {
        "documents_in": len(ds),
        "documents_out": int(kept.size),
        "tokens_in": ds.num_tokens,
        "tokens_out": tokens_out,
    }
    source_meta = Path(str(ds.bin_path)[: -len(".bin")] + ".json")
    if source_meta.exists() and "vocab_size" in (src := json.loads(source_meta.read_text())):
        stats["vocab_size"] = src["vocab_size"]  # same tokenizer as the standard documents
    return stats


# The paper (section 2.2): dedup took the Pile from 334B to 207B tokens (GPT-NeoX-20B tokenizer).
PAPER_TOKENS_IN, PAPER_TOKENS_OUT = 334e9, 207e9


def token_reduction_report(dedup_stats: dict, documents_stats: dict) -> dict:
    """What dedup removed, in documents and tokens, beside the paper's 334B -> 207B."""
    t_in, t_out = documents_stats["tokens_in"], documents_stats["tokens_out"]
    return {
        **{k: dedup_stats[k] for k in ("documents_in", "documents_out", "duplicate_clusters")},
        "documents_removed_fraction": round(
            1 - dedup_stats["documents_out"] / max(dedup_stats["documents_in"], 1), 6
        ),
        "tokens_in": t_in,
        "tokens_out": t_out,
        "tokens_removed_fraction": round(1 - t_out / max(t_in, 1), 6),
        "paper": {
            "tokens_in": PAPER_TOKENS_IN,
            "tokens_out": PAPER_TOKENS_OUT,
            "tokens_removed_fraction": round(1 - PAPER_TOKENS_OUT / PAPER_TOKENS_IN, 6),
        },
        "settings": {
            k: dedup_stats[k] for k in ("threshold", "num_perm", "shingle_size", "seed", "shards")
        },
    }
