"""The LAMBADA-style last-word cloze task (rule cloze_task).

Pythia evaluates every checkpoint on LAMBADA (reference/pythia.md §5). Offline we build a
last-word cloze set from held-out corpus documents (``build_cloze_task``) and write it as an
lm-eval loglikelihood task like lambada_openai (``write_task_yaml``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from workflow.core.io import sha256_file
from workflow.eval.task_files import metric, task_spec, write_jsonl, write_task_file

MIN_WORDS = 5
# LAMBADA targets are bare words: sentence punctuation after the final word is dropped.
TRAILING_PUNCT = ".!?,;:"


def cloze_passage(text: str, max_words: int) -> str | None:
    """The last `max_words` words of `text`, single-spaced, ending in a bare final word.

    None when the document has fewer than MIN_WORDS words.
    """
    words = text.split()
    while words:
        last = words[-1].rstrip(TRAILING_PUNCT)
        if last:
            words[-1] = last
            break
        words.pop()  # a trailing token of pure punctuation ("...")
    if len(words) < MIN_WORDS:
        return None
    return " ".join(words[-max_words:])


def _passages(heldout_jsonl: Path, max_words: int) -> tuple[list[str], int]:
    """(cloze passages of the documents long enough, number of documents too short)."""
    passages, short = [], 0
    with open(heldout_jsonl) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f"{heldout_jsonl}:{lineno}: expected a JSON object with a 'text' field"
                ) from None
            passage = cloze_passage(text, max_words)
            if passage is None:
                short += 1
            else:
                passages.append(passage)
    return passages, short


def cloze_doc(passage: str) -> dict[str, str]:
    """A cloze document: the passage, its context and its target word (with its space)."""
    *context, last = passage.split(" ")
    return {"text": passage, "context": " ".join(context), "target": " " + last}


def build_cloze_task(
    heldout_jsonl: str | os.PathLike,
    out_jsonl: str | os.PathLike,
    *,
    num_documents: int,
    seed: int = 1234,
    max_words: int = 60,
) -> dict[str, Any]:
    """Write a last-word cloze set from held-out documents: ``{"text": passage, "context":
    all but its last word, "target": " " + its last word}`` lines (lambada_openai's
    ``text.split(' ')[:-1]|join(' ')`` and ``' '+text.split(' ')[-1]``, precomputed: lm-eval
    compiles a Jinja template per document and checkpoint).

    Up to `num_documents` eligible documents are chosen with `seed` (kept in file order). Returns a
    summary: {source, out, num_documents, eligible, skipped_short, seed, max_words, sha256}.
    """
    heldout_jsonl = Path(heldout_jsonl)
    if num_documents < 1:
        raise ValueError(f"num_documents must be >= 1, got {num_documents}")
    if max_words < MIN_WORDS:
        raise ValueError(f"max_words must be >= {MIN_WORDS}, got {max_words}")
    passages, short = _passages(heldout_jsonl, max_words)
    if not passages:
        raise ValueError(f"{heldout_jsonl}: no document has >= {MIN_WORDS} words for a cloze task")
    chosen = range(len(passages))
    if len(passages) > num_documents:
        chosen = sorted(random.Random(seed).sample(range(len(passages)), num_documents))
    write_jsonl(out_jsonl, (cloze_doc(passages[i]) for i in chosen))
    return {
        "source": str(heldout_jsonl),
        "out": str(out_jsonl),
        "num_documents": len(chosen),
        "eligible": len(passages),
        "skipped_short": short,
        "seed": seed,
        "max_words": max_words,
        "sha256": sha256_file(out_jsonl),
    }


def write_task_yaml(
    task_name: str, data_jsonl: str | os.PathLike, out_yaml: str | os.PathLike
) -> Path:
    """An lm-eval loglikelihood task (acc, perplexity) over `data_jsonl`, like lambada_openai."""
    data = Path(data_jsonl).resolve()
    if not data.is_file():
        raise FileNotFoundError(f"task data {data} does not exist")
    spec = task_spec(
        task_name,
        data,
        "loglikelihood",
        [metric("perplexity", "perplexity", False), metric("acc", "mean", True)],
        doc_to_text="context",
        doc_to_target="target",
    )
    return write_task_file(spec, out_yaml)
