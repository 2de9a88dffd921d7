"""The arithmetic tasks of the term-frequency study (rule term_frequency_tasks).

Razeghi et al.'s arithmetic tasks ask ``Q:What is {x1} plus/times {x2}? A:`` and score the first
1-5 digit number the model generates (greedy, until a newline) by exact match; k-shot prompts
take their examples from other x1 only (their validation split), so a shot never gives the
answer away. ``build_arithmetic_tasks`` writes one lm-eval ``generate_until`` task per
(operation, shots), the few-shot prompt built into each document, with x1 and x2 as document
fields: per-x1 accuracy then comes from lm-eval's logged samples (one task per x1 would make
lm-eval build 100 tasks per operation).

Two prompt formats (term_frequency.protocol). ``pythia``, Pythia's case study under lm-eval 0.3:
an example is the question and its answer with no space between (``Q:What is 3 plus 4? A:7``),
examples are joined by a blank line and a blank line precedes the asked question (lm-eval 0.3's
fewshot_context). ``embedded``, the default: the format the embedded corpus plants, one question
per line with a space before the answer (``Q:What is 3 plus 4? A: 7``), so the tiny suite is
scored on the text it was trained on. Zero-shot prompts are the question alone in both. The
examples themselves are drawn the same way in both (k distinct pairs of other x1, seeded per
document); lm-eval 0.3's own draw (one random.Random per run over every task) is not replayed.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

from workflow.eval.task_files import metric, task_spec, write_jsonl, write_task_file
from workflow.studies.term_frequency.config import (
    OPERATIONS,
    TermFrequencyError,
    check_protocol,
    span,
)

ANSWER_RE = re.compile(r"(\d{1,5})")  # Razeghi et al. score the first 1-5 digit number
TASK_NAME = re.compile(r"^term_frequency_(?P<operation>[a-z]+)_(?P<shots>\d+)shot$")


def task_name(operation: str, shots: int) -> str:
    """The lm-eval task of (operation, shots); TASK_NAME parses it back."""
    return f"term_frequency_{operation}_{shots}shot"


def question(x1: int, operation: str, x2: int) -> str:
    return f"Q:What is {x1} {operation} {x2}? A:"


def shot(x1: int, operation: str, x2: int, answer: int, protocol: str = "embedded") -> str:
    """One solved example: the question, then the answer after a space (embedded) or right
    after ``A:`` (pythia: doc_to_text + doc_to_target)."""
    sep = "" if protocol == "pythia" else " "
    return f"{question(x1, operation, x2)}{sep}{answer}"


def prompt(examples: Sequence[str], asked: str, protocol: str = "embedded") -> str:
    """The asked question after the solved examples: one per line (embedded), or separated by
    blank lines (pythia, lm-eval 0.3's fewshot_context); the question alone without examples."""
    return ("\n\n" if protocol == "pythia" else "\n").join([*examples, asked])


def answer_of(generated: str) -> str | None:
    """The first 1-5 digit number of a generation (Razeghi et al.'s answer extraction)."""
    m = ANSWER_RE.search(generated)
    return m.group(1) if m else None


def arithmetic_documents(
    operation: str,
    x1_values: Sequence[int],
    x2_values: Sequence[int],
    shots: int,
    seed: int,
    protocol: str = "embedded",
) -> list[dict]:
    """One document per (x1, x2): {x1, x2, prompt, answer}. The `shots` examples of a document
    are distinct (a, b) pairs with a != x1 (Razeghi's few-shot pool: every other x1 x every x2),
    drawn with a seed of their own, before the asked question in `protocol`'s format (shot,
    prompt)."""
    check_protocol(protocol)
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
            examples = [
                shot(a, operation, b, op(a, b), protocol)
                for a, b in (divmod(i, len(x2_values)) for i in picks)
                for a, b in [(others[a], x2_values[b])]
            ]
            text = prompt(examples, question(x1, operation, x2), protocol)
            docs.append({"x1": x1, "x2": x2, "prompt": text, "answer": str(op(x1, x2))})
    return docs


def write_arithmetic_task_yaml(
    name: str, data_jsonl: str | os.PathLike, out_yaml, max_new_tokens: int
) -> Path:
    """An lm-eval generate_until task: greedy until a newline, the first 1-5 digit number of
    the output against the answer by exact match. Prompt and answer are the documents' own
    fields (lm-eval reads a field by name; a Jinja template is compiled per document)."""
    spec = task_spec(
        name,
        data_jsonl,
        "generate_until",
        [metric("exact_match", "mean", True)],
        doc_to_text="prompt",
        doc_to_target="answer",
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
    protocol: str = "embedded",
) -> dict[str, int]:
    """`<task>.jsonl` + `<task>.yaml` for every (operation, shots) into `out_dir`, prompts in
    `protocol`'s format; returns the document count per task. `x1`, `x2` are inclusive [lo, hi]
    ranges."""
    x1_values, x2_values = span("x1", x1), span("x2", x2)
    out_dir = Path(out_dir)
    counts = {}
    for operation in operations:
        for k in shots:
            docs = arithmetic_documents(operation, x1_values, x2_values, int(k), seed, protocol)
            name = task_name(operation, int(k))
            data = out_dir / f"{name}.jsonl"
            write_jsonl(data, docs)
            write_arithmetic_task_yaml(name, data, out_dir / f"{name}.yaml", max_new_tokens)
            counts[name] = len(docs)
    return counts
