"""Tokenization MB/s: `tokenize_documents(workers=2)` vs a single-process `Tokenizer.encode` loop.

Both do the same end-to-end work on the same jsonl: parse each line, encode the text, write the
ids (+ EOD) to a `.bin/.idx` pair. The corpus is synthetic text (independent of
`generate_corpus`), repeated to the wanted size.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path

import numpy as np

from bench.common import Result, timed
from workflow.data.indexed_dataset import IndexedDatasetWriter, MMapIndexedDataset
from workflow.data.jsonl import read_jsonl
from workflow.data.tokenize import tokenize_documents
from workflow.data.tokenizer import EOD_ID, load_tokenizer, train_bpe


def _documents(n: int, seed: int) -> list[str]:
    """Zipf-distributed pseudo-words in sentences, with digits, code-ish lines and non-ASCII."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ten", "sa", "ri", "on", "the", "ver", "é", "ß", "東", "qu"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(20000)]
    cum = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))  # Zipf
    docs = []
    for _ in range(n):
        sentences = []
        for _ in range(rng.randint(3, 30)):
            w = rng.choices(words, cum_weights=cum, k=rng.randint(4, 25))
            if rng.random() < 0.1:
                w.append(f"{rng.randint(0, 10**6)}")
            sentences.append(" ".join(w).capitalize() + rng.choice([".", "!", "?", ":\n  x = 1;"]))
        docs.append(" ".join(sentences))
    return docs


def make_corpus(work: Path, megabytes: float, vocab_size: int) -> tuple[Path, Path, int]:
    """(jsonl, tokenizer.json, bytes of text): 1500 documents repeated to ~megabytes."""
    docs = _documents(1500, seed=7)
    lines = [json.dumps({"text": t}) + "\n" for t in docs]
    base = work / "base.jsonl"
    base.write_text("".join(lines), encoding="utf-8")
    tok = work / "tokenizer.json"
    train_bpe([base], vocab_size, tok)
    text_bytes = sum(len(t.encode("utf-8")) for t in docs)
    repeats = max(1, round(megabytes * 1e6 / text_bytes))
    corpus = work / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(repeats):
            f.writelines(lines)
    return corpus, tok, text_bytes * repeats


def baseline_tokenize(jsonl: Path, tokenizer_path: Path, out_prefix: Path) -> None:
    """The plain single-process loop."""
    tok = load_tokenizer(tokenizer_path)
    with IndexedDatasetWriter(out_prefix, np.uint16) as writer:
        for _, record in read_jsonl(jsonl):
            ids = tok.encode(record["text"], add_special_tokens=False).ids
            writer.add_document(np.asarray(ids + [EOD_ID], dtype=np.uint16))


def run(work: Path, megabytes: float = 30, vocab_size: int = 16384, workers: int = 2) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    corpus, tok, nbytes = make_corpus(work, megabytes, vocab_size)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the baseline is single-threaded
    _, t_base = timed(baseline_tokenize, corpus, tok, work / "base")
    _, t_ours = timed(tokenize_documents, corpus, tok, work / "ours", workers=workers)
    identical = (work / "ours.bin").read_bytes() == (work / "base.bin").read_bytes() and len(
        MMapIndexedDataset(work / "ours")
    ) == len(MMapIndexedDataset(work / "base"))
    mb = nbytes / 1e6
    ratio = t_base / t_ours
    return Result(
        name=f"tokenization ({mb:.0f} MB text, vocab {vocab_size}, {workers} workers)",
        ours=f"{mb / t_ours:.2f} MB/s",
        baseline=f"{mb / t_base:.2f} MB/s",
        ratio=ratio,
        target=">= 1.8x",
        passed=identical and ratio >= 1.8,
        note="" if identical else "token ids DIFFER from the baseline",
    )
