"""The arithmetic tasks of the term-frequency study (rule term_frequency_tasks).

Razeghi et al.'s arithmetic tasks ask ``Q:What is {x1} plus/times {x2}? A:`` and score the first
1-5 digit number the model generates (greedy, until a newline) by exact match; k-shot prompts
take their examples from other x1 only (their validation split), so a shot never gives the
answer away. ``build_arithmetic_tasks`` writes one lm-eval ``generate_until`` task per
(operation, shots), the few-shot prompt built into each document, with x1 and x2 as document
fields: per-x1 accuracy then comes from lm-eval's logged samples (one task per x1 would make
lm-eval build 100 tasks per operation).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

from workflow.eval.task_files import metric, task_spec, write_jsonl, write_task_file
from workflow.studies.term_frequency.config import OPERATIONS, TermFrequencyError, span

ANSWER_RE = re.compile(r"(\d{1,5})")  # Razeghi et al. score the first 1-5 digit number
TASK_NAME = re.compile(r"^term_frequency_(?P<operation>[a-z]+)_(?P<shots>\d+)shot$")


def task_name(operation: str, shots: int) -> str:
    """The lm-eval task of (operation, shots); TASK_NAME parses it back."""
    return f"term_frequency_{operation}_{shots}shot"


def question(x1: int, operation: str, x2: int) -> str:
    return f"Q:What is {x1} {operation} {x2}? A:"


def answer_of(generated: str) -> str | None:
    """The first 1-5 digit number of a generation (Razeghi et al.'s answer extraction)."""
    m = ANSWER_RE.search(generated)
    return m.group(1) if m else None


def arithmetic_documents(
    operation: str, x1_values: Sequence[int], x2_values: Sequence[int], shots: int, seed: int
) -> list[dict]:
    """One document per (x1, x2): {x1, x2, prompt, answer}. The `shots` examples of a document
    are distinct (a, b) pairs with a != x1 (Razeghi's few-shot pool: every other x1 x every x2),
    drawn with a seed of their own, one question per line before the asked one."""
    if operation not in OPERATIONS:
        raise TermFrequencyError(
            f"unknown operation {operation!r}: use one of {sorted(OPERATIONS)}"
        )
    if shots < 0:
        raise TermFrequencyError(f"shots must be >= 0, got {shots}")
    op = OPERATIONS[operation]
    x1_values, x2_values = list(x1_values), list(x2_values)
    if len(set(x1_values)) < 2 and shots:
        raise TermFrequencyError(
            "few-shot prompts need at least two x1 values (shots use other x1)"
        )
    pool_size = (len(x1_values) - 1) * len(x2_values)
    if shots > pool_size:
        raise TermFrequencyError(f"{shots} shots but only {pool_size} examples with another x1")
    docs = []
    for x1 in x1_values:
        others = [a for a in x1_values if a != x1]
        for x2 in x2_values:
            rng = random.Random(f"{seed}-{operation}-{shots}-{x1}-{x2}")
            picks = rng.sample(range(len(others) * len(x2_values)), shots)
            lines = [
                f"{question(a, operation, b)} {op(a, b)}"
                for a, b in (divmod(i, len(x2_values)) for i in picks)
                for a, b in [(others[a], x2_values[b])]
            ]
            lines.append(question(x1, operation, x2))
            docs.append({"x1": x1, "x2": x2, "prompt": "\n".join(lines), "answer": str(op(x1, x2))})
    return docs


def write_arithmetic_task_yaml(
    name: str, data_jsonl: str | os.PathLike, out_yaml, max_new_tokens: int
) -> Path:
    """An lm-eval generate_until task: greedy until a newline, the first 1-5 digit number of
    the output against the answer by exact match."""
    spec = task_spec(
        name,
        data_jsonl,
        "generate_until",
        [metric("exact_match", "mean", True)],
        doc_to_text="{{prompt}}",
        doc_to_target="{{answer}}",
        generation_kwargs={
            "until": ["\n"],
            "max_gen_toks": int(max_new_tokens),
            "do_sample": False,
            "temperature": 0.0,
        },
        filter_list=[
            {
                "name": "first_number",
                "filter": [
                    {"function": "regex", "regex_pattern": ANSWER_RE.pattern},
                    {"function": "take_first"},
                ],
            }
        ],
    )
    return write_task_file(spec, out_yaml)


def build_arithmetic_tasks(
    out_dir: str | os.PathLike,
    *,
    operations: Sequence[str],
    x1: Sequence[int],
    x2: Sequence[int],
    shots: Sequence[int],
    max_new_tokens: int = 16,
    seed: int = 1234,
) -> dict[str, int]:
    """`<task>.jsonl` + `<task>.yaml` for every (operation, shots) into `out_dir`; returns the
    document count per task. `x1`, `x2` are inclusive [lo, hi] ranges."""
    x1_values, x2_values = span("x1", x1), span("x2", x2)
    out_dir = Path(out_dir)
    counts = {}
    for operation in operations:
        for k in shots:
            docs = arithmetic_documents(operation, x1_values, x2_values, int(k), seed)
            name = task_name(operation, int(k))
            data = out_dir / f"{name}.jsonl"
            write_jsonl(data, docs)
            write_arithmetic_task_yaml(name, data, out_dir / f"{name}.yaml", max_new_tokens)
            counts[name] = len(docs)
    return counts
