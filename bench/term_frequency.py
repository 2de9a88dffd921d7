"""Operand counting for the term-frequency study: tokens/s of `cumulative_counts` (token-id
tables, one vectorised pass over the memory-mapped samples) vs the per-sample Python count
(decode each row, regex its numbers), same run, same rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import Result, timed
from workflow.data.indexed_dataset import write_indexed_dataset
from workflow.studies.term_frequency.counts import (
    NumberTokens,
    count_numbers,
    count_numbers_reference,
    cumulative_counts,
)

SEQ, BATCH = 2049, 1024  # Pythia's rows and batch: step s has seen rows [0, s * 1024)


def make_samples(work: Path, tokens: int) -> tuple[Path, Path]:
    """A byte-level BPE trained on the generated corpus (its arithmetic, code and prose hold
    numbers of every kind) and the corpus tokenized and tiled into `tokens` tokens of rows."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from workflow.data.corpus import generate_corpus
    from workflow.data.jsonl import read_jsonl

    work.mkdir(parents=True, exist_ok=True)
    generate_corpus(
        work / "train.jsonl", work / "heldout.jsonl", seed=3, num_documents=1500,
        heldout_documents=1, near_duplicate_clusters=0, near_duplicate_copies=2,
        near_duplicate_edit_rate=0.0,
    )  # fmt: skip
    texts = [r["text"] for _, r in read_jsonl(work / "train.jsonl")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=4096,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.save(str(work / "tokenizer.json"))
    stream = np.concatenate([np.array(e.ids + [0], np.uint16) for e in tok.encode_batch(texts)])
    rows = -(-tokens // SEQ)
    flat = np.resize(stream, rows * SEQ)  # the corpus repeated
    write_indexed_dataset(work / "samples", flat.reshape(rows, SEQ))
    return work / "samples", work / "tokenizer.json"


def run(work: Path, tokens: int, baseline_rows: int) -> Result:
    prefix, tok = make_samples(work, tokens)
    from workflow.data.indexed_dataset import MMapIndexedDataset

    ds = MMapIndexedDataset(prefix)
    batch = max(1, min(BATCH, len(ds) // 6))  # Pythia's batch when there are 6 steps of it
    steps = [k * (len(ds) // batch) // 6 for k in range(1, 7)]  # 6 checkpoints, as the paper
    values = list(range(100))
    n_tokens = steps[-1] * batch * SEQ
    cumulative_counts(prefix, tok, steps[-1:], batch, values)  # the page cache, as for both
    counts, t_ours = timed(cumulative_counts, prefix, tok, steps, batch, values)
    sub = ds.get_rows(0, baseline_rows)
    base, t_base = timed(count_numbers_reference, sub, tok)
    r, v = count_numbers(sub, NumberTokens.from_tokenizer(tok))
    exact = Counter(zip(r.tolist(), v.tolist(), strict=True)) == Counter(base)
    ours_rate, base_rate = n_tokens / t_ours, sub.size / t_base
    digit = float(NumberTokens.from_tokenizer(tok).has_digit[ds.get_rows(0, 256)].mean())
    return Result(
        name=f"x1 counts over {n_tokens / 1e6:,.0f}M tokens, {len(steps)} checkpoints",
        ours=f"{ours_rate / 1e6:,.1f}M tokens/s",
        baseline=f"{base_rate / 1e6:,.2f}M tokens/s",
        ratio=ours_rate / base_rate,
        target=">= 100M tokens/s, exact",
        passed=ours_rate >= 100e6 and exact,
        note=(
            f"baseline: decode + regex per sample on the first {baseline_rows} rows; "
            f"{digit:.1%} of tokens hold digits (the generated corpus); counts "
            f"{'identical' if exact else 'DIFFER'} on those rows; total x1 count at the last "
            f"step {int(counts[-1].sum()):,}"
        ),
    )
