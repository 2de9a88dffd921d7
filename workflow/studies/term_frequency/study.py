"""Term frequency (paper §3.3, Fig. 7, Table 4): arithmetic accuracy against operand frequency.

Razeghi et al.'s arithmetic tasks ask ``Q:What is {x1} plus/times {x2}? A:`` and score the first
1-5 digit number the model generates (greedy, until a newline) by exact match; k-shot prompts
take their examples from other x1 only (their validation split), so a shot never gives the
answer away. Pythia plots the accuracy per x1, averaged over x2, against how often x1 occurred in
the data the checkpoint had seen (reference/pythia.md §6b).

* ``build_arithmetic_tasks`` writes one lm-eval ``generate_until`` task per (operation, shots),
  the few-shot prompt built into each document, with x1 and x2 as document fields: per-x1
  accuracy then comes from lm-eval's logged samples (one task per x1 would make lm-eval build
  100 tasks per operation).
* ``NumberTokens`` + ``count_numbers`` count standalone numbers in token rows without decoding
  them: per-vocabulary tables say where a token's digit runs are, and numbers split over several
  tokens (``' 4' '9' '5'``) are joined in one vectorised pass over the few digit-bearing
  positions. ``count_numbers_reference`` is the plain definition (decode each row, regex).
* ``cumulative_counts`` gives the count of each x1 in the rows ``[0, step * B)`` every checkpoint
  has trained on, in one pass over the memory-mapped samples.
* ``frequency_accuracy``, ``frequency_gap`` (Table 4) and ``binned_accuracy`` (Fig. 7) join them.

A number is a maximal run of ASCII digits with no ASCII letter or digit on either side (the regex
``(?<![0-9A-Za-z])[0-9]+(?![0-9A-Za-z])`` on the decoded row), written without leading zeros
("07" is not 7). Each training row is counted on its own (the rows the model saw); Pythia's
script counts numbers in "number, 1-3 words, number" windows instead, which on arithmetic-heavy
text differs little and needs the decoded text.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from workflow.core.io import atomic_path, write_text

OPERATIONS = {"plus": lambda a, b: a + b, "times": lambda a, b: a * b}
MAX_DIGITS = 5  # Razeghi et al. score the first 1-5 digit number
ANSWER_RE = re.compile(r"(\d{1,5})")
NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?![0-9A-Za-z])")
_POW10 = 10 ** np.arange(MAX_DIGITS + 1, dtype=np.int64)


class TermFrequencyError(ValueError):
    """Bad input for the term-frequency study; the message names it."""


# ------------------------------------------------------------------------------------ tasks


def question(x1: int, operation: str, x2: int) -> str:
    return f"Q:What is {x1} {operation} {x2}? A:"


def answer_of(generated: str) -> str | None:
    """The first 1-5 digit number of a generation (Razeghi et al.'s answer extraction)."""
    m = ANSWER_RE.search(generated)
    return m.group(1) if m else None


def task_name(operation: str, shots: int) -> str:
    return f"term_frequency_{operation}_{shots}shot"


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
    spec = {
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(Path(data_jsonl).resolve())}},
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {
            "until": ["\n"],
            "max_gen_toks": int(max_new_tokens),
            "do_sample": False,
            "temperature": 0.0,
        },
        "filter_list": [
            {
                "name": "first_number",
                "filter": [
                    {"function": "regex", "regex_pattern": ANSWER_RE.pattern},
                    {"function": "take_first"},
                ],
            }
        ],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
    write_text(out_yaml, yaml.safe_dump(spec, sort_keys=False))
    return Path(out_yaml)


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
    x1_values, x2_values = _span("x1", x1), _span("x2", x2)
    out_dir = Path(out_dir)
    counts = {}
    for operation in operations:
        for k in shots:
            docs = arithmetic_documents(operation, x1_values, x2_values, int(k), seed)
            name = task_name(operation, int(k))
            data = out_dir / f"{name}.jsonl"
            with atomic_path(data) as tmp, open(tmp, "w") as f:
                f.writelines(json.dumps(d) + "\n" for d in docs)
            write_arithmetic_task_yaml(name, data, out_dir / f"{name}.yaml", max_new_tokens)
            counts[name] = len(docs)
    return counts


def _span(key: str, lo_hi: Sequence[int]) -> list[int]:
    lo, hi = (int(v) for v in lo_hi)
    if not 0 <= lo <= hi:
        raise TermFrequencyError(f"term_frequency.{key} must be [lo, hi] with 0 <= lo <= hi")
    return list(range(lo, hi + 1))


def per_x1_accuracy(samples: Iterable[dict]) -> dict[int, tuple[int, int]]:
    """{x1: (correct, documents)} from lm-eval's logged samples of one arithmetic task."""
    out: dict[int, list[int]] = {}
    for s in samples:
        c = out.setdefault(int(s["doc"]["x1"]), [0, 0])
        c[0] += int(s["exact_match"] == 1.0)
        c[1] += 1
    return {x1: (c[0], c[1]) for x1, c in sorted(out.items())}


# --------------------------------------------------------------------------- number counting


# Element codes: one int64 per (token, run at its start / run at its end), so the sparse pass
# gathers one word per element and takes the fields apart with shifts.
_LEN, _VAL, _ZERO, _LEFT, _RIGHT, _INNER, _EXISTS = 0, 3, 20, 21, 22, 23, 24
_TOO_LONG = MAX_DIGITS + 1  # any run longer than MAX_DIGITS digits (never counted)


@dataclass(frozen=True)
class NumberTokens:
    """Per vocabulary id: where the token's digit runs are.

    codes[i, 0] describes the run at the token's start (element kind A; the whole token when
    it is all digits), codes[i, 1] the run at its end when the token is not all digits (kind
    B); 0 when there is none. Fields: digits (capped at MAX_DIGITS + 1), value, starts with
    '0', can continue the previous token (A), can be continued by the next token (B, or an
    all-digit A), the in-token character beside the run is not a letter (A: after it, B:
    before it). first_alpha / last_alpha: the token starts / ends with an ASCII letter. Runs
    touching neither end are complete inside the token: their valid numbers are
    internal_values[internal_offsets[i]:internal_offsets[i + 1]]."""

    has_digit: np.ndarray
    codes: np.ndarray
    first_alpha: np.ndarray
    last_alpha: np.ndarray
    internal_offsets: np.ndarray
    internal_values: np.ndarray
    starts_digit: np.ndarray
    ends_digit: np.ndarray
    single: np.ndarray
    single_ok: np.ndarray
    single_value: np.ndarray
    # has_digit over every uint16 id, True past the vocabulary: a uint16 row needs no separate
    # range check, an out-of-range id lands among the digit positions and is caught there
    has_digit_u16: np.ndarray

    @classmethod
    def from_strings(cls, strings: Sequence[str]) -> NumberTokens:
        n = len(strings)
        has, fa, la = (np.zeros(n, bool) for _ in range(3))
        codes = np.zeros((n, 2), np.int64)
        offsets, values = [0], []
        for i, s in enumerate(strings):
            if s:
                fa[i], la[i] = _alpha(s[0]), _alpha(s[-1])
            runs = [(m.start(), m.end()) for m in re.finditer("[0-9]+", s)]
            if not runs:
                offsets.append(len(values))
                continue
            has[i] = True
            full = runs[0] == (0, len(s))
            if runs[0][0] == 0:
                a, e = runs[0]
                inner = e == len(s) or not _alpha(s[e])
                codes[i, 0] = _code(s[a:e], left=True, right=full, inner=inner)
            if runs[-1][1] == len(s) and not full:
                a, e = runs[-1]
                inner = not _alpha(s[a - 1])
                codes[i, 1] = _code(s[a:e], left=False, right=True, inner=inner)
            for a, e in runs:
                if a > 0 and e < len(s) and not _alpha(s[a - 1]) and not _alpha(s[e]):
                    if e - a <= MAX_DIGITS and (e - a == 1 or s[a] != "0"):
                        values.append(int(s[a:e]))
            offsets.append(len(values))
        # a token whose digits are one run touching an end (no number inside it): alone, it
        # is one number, valid by itself when single_ok
        offsets = np.asarray(offsets, np.int64)
        starts = (codes[:, 0] >> _LEFT) & 1 == 1
        full = starts & ((codes[:, 0] >> _RIGHT) & 1 == 1)
        ends = full | (codes[:, 1] != 0)
        one_run = has & ((codes[:, 0] != 0) ^ (codes[:, 1] != 0)) & (np.diff(offsets) == 0)
        run = np.where(codes[:, 0] != 0, codes[:, 0], codes[:, 1])
        length, inner = (run >> _LEN) & 7, (run >> _INNER) & 1 == 1
        zero = (run >> _ZERO) & 1 == 1
        single_ok = (length <= MAX_DIGITS) & ~(zero & (length > 1)) & (full | inner)
        return cls(
            has, codes, fa, la, offsets, np.asarray(values, np.int64),
            starts, ends, one_run, single_ok, (run >> _VAL) & 0x1FFFF,
            np.concatenate([has, np.ones(max(0, 65536 - n), bool)]),
        )  # fmt: skip

    @classmethod
    def from_tokenizer(cls, tokenizer_path: str | os.PathLike) -> NumberTokens:
        """The table of a byte-level BPE tokenizer (ours, GPT-NeoX-20B's): decoding a row is
        the concatenation of its tokens' strings, which the vectorised count relies on."""
        tok = _load_tokenizer(tokenizer_path)
        size = tok.get_vocab_size(with_added_tokens=True)
        return cls.from_strings([tok.decode([i], skip_special_tokens=False) for i in range(size)])


def _alpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _code(digits: str, *, left: bool, right: bool, inner: bool) -> int:
    length = min(len(digits), _TOO_LONG)
    value = int(digits) if len(digits) <= MAX_DIGITS else 0
    return (
        length << _LEN
        | value << _VAL
        | (digits[0] == "0") << _ZERO
        | left << _LEFT
        | right << _RIGHT
        | inner << _INNER
        | 1 << _EXISTS
    )


def _load_tokenizer(path: str | os.PathLike):
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise TermFrequencyError(f"tokenizer {path} does not exist")
    tok = Tokenizer.from_file(str(path))
    decoder = (json.loads(tok.to_str()).get("decoder") or {}).get("type")
    if decoder != "ByteLevel":
        raise TermFrequencyError(
            f"tokenizer {path}: decoder {decoder!r}; counting numbers on token ids needs a "
            "byte-level BPE (ByteLevel decoder), whose rows decode to their tokens' strings"
        )
    return tok


def count_numbers(rows: np.ndarray, table: NumberTokens) -> tuple[np.ndarray, np.ndarray]:
    """Every standalone number of 1-5 digits in `rows` (n, L) of token ids, each row on its
    own: (row index, value) arrays.

    The dense work is one table lookup and one nonzero over the tokens; the rest runs on the
    digit-bearing positions only. Each yields up to two elements (NumberTokens.codes, kept
    in text order); consecutive elements at adjacent positions of one row that can continue
    each other form one number, whose value is each element's digits shifted by the digits
    after it.
    """
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise TermFrequencyError(f"rows must be (n, L) token ids, got shape {rows.shape}")
    width = rows.shape[1]
    flat = rows.reshape(-1)
    vocab = len(table.has_digit)
    if flat.dtype == np.uint16:  # one lookup finds the digits and any out-of-range id
        pos = np.flatnonzero(table.has_digit_u16[flat])
        bad = flat[pos][flat[pos] >= vocab]
    else:
        bad = flat[(flat >= vocab) | (flat < 0)]
        pos = np.flatnonzero(table.has_digit[flat]) if not bad.size else None
    if bad.size:
        raise TermFrequencyError(f"token id {int(bad[0])} is outside the tokenizer's {vocab} ids")
    ids = flat[pos]
    found_rows, found_values = [], []

    if table.internal_values.size:  # numbers complete inside one token
        lo, hi = table.internal_offsets[ids], table.internal_offsets[ids + 1]
        inner = np.flatnonzero(hi - lo)
        reps = (hi - lo)[inner]
        first = np.repeat(lo[inner] - np.cumsum(reps) + reps, reps) + np.arange(reps.sum())
        found_rows.append(np.repeat(pos[inner] // width, reps))
        found_values.append(table.internal_values[first])

    # the common case, one token holding a whole number (" 51", "7" between non-digits):
    # its value and edge checks straight from the tables, no chain to follow
    col = pos % width
    left_open = table.starts_digit[ids]
    right_open = table.ends_digit[ids]
    joined = np.zeros(pos.size, bool)  # joined to the next digit-bearing position
    if pos.size > 1:
        joined[:-1] = (pos[1:] - pos[:-1] == 1) & right_open[:-1] & left_open[1:] & (col[1:] != 0)
    alone = table.single[ids]
    alone[1:] &= ~joined[:-1]
    alone &= ~joined
    if alone.any():
        a_pos, a_ids, a_col = pos[alone], ids[alone], col[alone]
        ok = ~(table.last_alpha[flat[a_pos - 1]] & (a_col != 0)) | ~left_open[alone]
        nxt = flat[np.minimum(a_pos + 1, flat.size - 1)]
        ok &= ~(table.first_alpha[nxt] & (a_col != width - 1)) | ~right_open[alone]
        ok &= table.single_ok[a_ids]
        found_rows.append(a_pos[ok] // width)
        found_values.append(table.single_value[a_ids[ok]])
        rest = ~alone
        pos, ids = pos[rest], ids[rest]

    both = table.codes[ids].reshape(-1)
    which = np.flatnonzero(both)
    code = both[which]
    e_pos = pos[which >> 1]
    if code.size:
        length = (code >> _LEN) & 7
        can_left = (code >> _LEFT) & 1 == 1
        can_right = (code >> _RIGHT) & 1 == 1
        inner_ok = (code >> _INNER) & 1 == 1
        col = e_pos % width
        link = (np.diff(e_pos) == 1) & can_right[:-1] & can_left[1:] & (col[1:] != 0)
        start = np.ones(code.size, bool)
        start[1:] = ~link
        starts = np.flatnonzero(start)
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:] - 1
        ends[-1] = code.size - 1
        total = np.add.reduceat(length, starts)
        # a number's edges: inside its token, or the neighbouring token is not a letter
        f_pos, l_pos = e_pos[starts], e_pos[ends]
        prev_letter = table.last_alpha[flat[f_pos - 1]] & (col[starts] != 0)
        next_letter = table.first_alpha[flat[np.minimum(l_pos + 1, flat.size - 1)]] & (
            col[ends] != width - 1
        )
        left_ok = np.where(can_left[starts], ~prev_letter, inner_ok[starts])
        right_ok = np.where(can_right[ends], ~next_letter, inner_ok[ends])
        zero = (code[starts] >> _ZERO) & 1 == 1
        valid = left_ok & right_ok & (total <= MAX_DIGITS) & ~(zero & (total > 1))
        chain = np.cumsum(start) - 1
        cum = np.cumsum(length)
        after = np.minimum(cum[ends][chain] - cum, MAX_DIGITS)
        value = ((code >> _VAL) & 0x1FFFF) * _POW10[after]
        found_rows.append(f_pos[valid] // width)
        found_values.append(np.add.reduceat(value, starts)[valid])
    if not found_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(found_rows), np.concatenate(found_values)


def count_numbers_reference(rows: np.ndarray, tokenizer_path: str | os.PathLike) -> list:
    """The definition, slowly: decode every row and find its numbers with NUMBER_RE; the
    [(row, value)] of the 1-5 digit ones without a leading zero."""
    tok = _load_tokenizer(tokenizer_path)
    out = []
    for r, row in enumerate(np.asarray(rows)):
        text = tok.decode(row.tolist(), skip_special_tokens=False)
        for m in NUMBER_RE.finditer(text):
            s = m.group()
            if len(s) <= MAX_DIGITS and (len(s) == 1 or s[0] != "0"):
                out.append((r, int(s)))
    return out


def cumulative_counts(
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    steps: Sequence[int],
    global_batch_size: int,
    values: Sequence[int],
    *,
    chunk_tokens: int = 1 << 25,
) -> np.ndarray:
    """counts[i, j]: occurrences of the number values[j] in the sample rows
    [0, steps[i] * global_batch_size) that checkpoint steps[i] has trained on. One pass over
    the memory-mapped sample file in chunks of whole rows."""
    from workflow.data.indexed_dataset import MMapIndexedDataset

    ds = MMapIndexedDataset(samples_prefix)
    steps = [int(s) for s in steps]
    if any(s < 0 for s in steps):
        raise TermFrequencyError(f"steps must be >= 0, got {steps}")
    bounds = np.asarray(sorted(set(steps)), np.int64) * int(global_batch_size)
    if bounds.size and bounds[-1] > len(ds):
        bad = max(steps)
        raise TermFrequencyError(
            f"step {bad} needs rows [0, {bad * global_batch_size}) but {ds.bin_path} has only "
            f"{len(ds)} rows ({len(ds) // global_batch_size} steps of {global_batch_size})"
        )
    values = np.asarray(values, np.int64)
    lut = np.full(10**MAX_DIGITS, -1, np.int64)
    lut[values] = np.arange(len(values))
    table = NumberTokens.from_tokenizer(tokenizer_path)
    hist = np.zeros((len(bounds) + 1, len(values)), np.int64)
    stop = int(bounds[-1]) if bounds.size else 0
    width = int(ds.sizes[0]) if len(ds) else 1
    chunk = max(1, chunk_tokens // width)
    for a in range(0, stop, chunk):
        b = min(stop, a + chunk)
        rows, vals = count_numbers(ds.get_rows(a, b), table)
        col = lut[vals]
        hit = col >= 0
        bucket = np.searchsorted(bounds, rows[hit] + a, side="right")
        hist += np.bincount(bucket * len(values) + col[hit], minlength=hist.size).reshape(
            hist.shape
        )
    per_bound = np.cumsum(hist, axis=0)[: len(bounds)]
    return per_bound[np.searchsorted(bounds, np.asarray(steps, np.int64) * global_batch_size)]


# --------------------------------------------------------------------- accuracy vs frequency


def frequency_gap(accuracy: Sequence[float], counts: Sequence[int], fraction: float = 0.1):
    """Table 4's Δ: mean accuracy of the `fraction` most frequent x1 minus that of the
    `fraction` least frequent, x100. Ties in count are broken by position (stable sort)."""
    acc, cnt = np.asarray(accuracy, float), np.asarray(counts)
    if acc.shape != cnt.shape or acc.ndim != 1 or not acc.size:
        raise TermFrequencyError("accuracy and counts must be equal-length, non-empty lists")
    if not 0 < fraction <= 0.5:
        raise TermFrequencyError(f"fraction must be in (0, 0.5], got {fraction}")
    k = max(1, int(round(fraction * len(acc))))
    order = np.argsort(cnt, kind="stable")
    return 100.0 * (acc[order[-k:]].mean() - acc[order[:k]].mean())


def frequency_bins(counts: Sequence[int], num_bins: int) -> np.ndarray:
    """`num_bins` log-spaced bin edges from the smallest to the largest positive count (the
    paper: 20 bins, 1e5..2e8); x1 never seen (count 0) fall outside."""
    c = np.asarray(counts)
    c = c[c > 0]
    if not c.size:
        raise TermFrequencyError("no x1 occurs in the counted data: nothing to bin")
    lo, hi = float(c.min()), float(c.max())
    if hi == lo:
        hi = lo * 1.0001
    return np.geomspace(lo, hi * 1.0001, num_bins + 1)


def binned_accuracy(accuracy, counts, edges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin centres, mean accuracy, x1 per bin) of the x1 whose count falls in each bin;
    empty bins are dropped."""
    acc, cnt = np.asarray(accuracy, float), np.asarray(counts, float)
    idx = np.searchsorted(edges, cnt, side="right") - 1
    ok = (cnt > 0) & (idx >= 0) & (idx < len(edges) - 1)
    n = np.bincount(idx[ok], minlength=len(edges) - 1)
    s = np.bincount(idx[ok], weights=acc[ok], minlength=len(edges) - 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    has = n > 0
    return centres[has], s[has] / n[has], n[has]


# ------------------------------------------------------------------------ evaluation, tables

_TASK = re.compile(r"^term_frequency_(?P<operation>[a-z]+)_(?P<shots>\d+)shot$")
TABLE_COLUMNS = [
    "size", "step", "operation", "shots", "x1", "correct", "documents", "accuracy", "count",
]  # fmt: skip


def evaluate_arithmetic(
    model_path: str | os.PathLike,
    *,
    tasks_dir: str | os.PathLike,
    tasks: Sequence[str],
    batch_size: int,
    device: str = "cpu",
) -> dict:
    """lm-eval on the arithmetic tasks of one checkpoint (the shots are in the prompts, so
    num_fewshot is 0): the aggregate exact match per task and {x1: [correct, documents]}."""
    from workflow.eval.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(
        model_path,
        tasks_dir=tasks_dir,
        tasks=tasks,
        num_fewshot=0,
        batch_size=batch_size,
        device=device,
        bootstrap_iters=0,
        log_samples=True,
    )
    samples = result.pop("samples")
    result["per_x1"] = {
        task: {str(x1): list(c) for x1, c in per_x1_accuracy(samples[task]).items()}
        for task in tasks
    }
    return result


def frequency_table(evals: Iterable[tuple[str, int, dict]], counts):
    """Accuracy per (size, step, operation, shots, x1) beside the count of x1 in the rows that
    step had trained on. `evals`: (size, step, evaluate_arithmetic JSON); `counts`: a frame
    [step, x1, count] (cumulative_counts)."""
    import pandas as pd

    rows = []
    for size, step, result in evals:
        for task, per_x1 in result["per_x1"].items():
            m = _TASK.match(task)
            if m is None:
                raise TermFrequencyError(f"{size} step {step}: {task!r} is not an arithmetic task")
            for x1, (correct, documents) in per_x1.items():
                rows.append(
                    (size, int(step), m["operation"], int(m["shots"]), int(x1), correct, documents)
                )
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS[:-2])
    df["accuracy"] = df["correct"] / df["documents"]
    merged = df.merge(counts[["step", "x1", "count"]], on=["step", "x1"], how="left")
    missing = merged[merged["count"].isna()][["step", "x1"]].drop_duplicates()
    if len(missing):
        raise TermFrequencyError(
            f"no operand count for (step, x1) {missing.head(3).values.tolist()}...: count the "
            "steps that are evaluated"
        )
    merged["count"] = merged["count"].astype("int64")
    return merged[TABLE_COLUMNS].sort_values(TABLE_COLUMNS[:5], ignore_index=True)


def gap_table(table, fraction: float = 0.1):
    """Table 4 (long): per (size, operation, shots, step) the gap Δ and the mean accuracy."""
    import pandas as pd

    out = []
    for key, g in table.groupby(["size", "operation", "shots", "step"], sort=False):
        g = g.sort_values("x1")
        gap = frequency_gap(g["accuracy"].to_numpy(), g["count"].to_numpy(), fraction)
        out.append((*key, round(float(gap), 4), round(float(g["accuracy"].mean()), 6)))
    return pd.DataFrame(out, columns=["size", "operation", "shots", "step", "gap", "accuracy"])


def gap_markdown(gap, sizes_order: Sequence[str], fraction: float) -> str:
    """One Markdown table per operation: sizes x (shots, step), cells Δ (x100)."""
    lines = []
    for operation, part in gap.groupby("operation", sort=True):
        cols = sorted({(int(k), int(s)) for k, s in zip(part["shots"], part["step"], strict=True)})
        lines += [
            f"### {operation}: accuracy of the {fraction:.0%} most frequent x1 minus the "
            f"{fraction:.0%} least frequent (x100)",
            "",
            "| model | " + " | ".join(f"{k}-shot step {s}" for k, s in cols) + " |",
            "|---|" + "---:|" * len(cols),
        ]
        cell = {(r.size, r.shots, r.step): r.gap for r in part.itertuples()}
        for size in [s for s in sizes_order if s in set(part["size"])]:
            vals = [cell.get((size, k, s)) for k, s in cols]
            lines.append(
                f"| {size} | " + " | ".join("" if v is None else f"{v:.1f}" for v in vals) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_frequency_accuracy(
    table,
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    operation: str,
    shots: int,
    sizes_order: Sequence[str],
    num_bins: int,
) -> None:
    """Fig. 7: accuracy (mean over x2, then over the x1 of a bin) against the x1 count, on
    `num_bins` log-spaced bins shared by all panels; one panel per size, one line per step."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from workflow.figures.evals import _savefig

    sub = table[(table["operation"] == operation) & (table["shots"] == shots)]
    if sub.empty:
        have = sorted(
            {(o, int(k)) for o, k in zip(table["operation"], table["shots"], strict=True)}
        )
        raise TermFrequencyError(f"no results for {operation} at {shots} shots (have: {have})")
    sizes = [s for s in sizes_order if s in set(sub["size"])]
    steps = sorted(sub["step"].unique())
    edges = frequency_bins(sub["count"].to_numpy(), num_bins)
    ncols = min(4, len(sizes))
    nrows = -(-len(sizes) // ncols)
    fig = Figure(figsize=(3.2 * ncols + 1.5, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).reshape(-1)
    cmap = colormaps["viridis"]
    handles = {}
    for ax, size in zip(axes, sizes, strict=False):
        for i, step in enumerate(steps):
            g = sub[(sub["size"] == size) & (sub["step"] == step)]
            x, y, _ = binned_accuracy(g["accuracy"], g["count"], edges)
            if len(x):
                (h,) = ax.plot(
                    x, y, marker="o", ms=3, lw=1.3, color=cmap(0.9 * i / max(len(steps) - 1, 1))
                )
                handles.setdefault(step, h)
        ax.set_xscale("log")
        ax.set_title(size)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(sizes) :]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols :]:
        ax.set_xlabel("x1 frequency in the data seen")
    for ax in axes[::ncols]:
        ax.set_ylabel("accuracy")
    fig.legend(
        [handles[s] for s in steps if s in handles],
        [f"step {s}" for s in steps if s in handles],
        loc="outside right center",
        frameon=False,
    )
    fig.suptitle(f"{operation}, {shots}-shot: accuracy against operand frequency")
    _savefig(fig, Path(out_pdf), "pdf")
    _savefig(fig, Path(out_png), "png")


def check_config(tf: dict, *, schedule: Sequence[int], variants: Sequence[str]) -> None:
    """Before any job: the study's settings fit the suite (key path and value in the error)."""
    if tf["variant"] not in variants:
        raise TermFrequencyError(
            f"term_frequency.variant: {tf['variant']!r} is not one of this suite's variants "
            f"{list(variants)}"
        )
    missing = [s for s in tf["steps"] if s not in set(schedule)]
    if missing:
        raise TermFrequencyError(
            f"term_frequency.steps: {missing} are not checkpoints of the training schedule"
        )
    for key in ("x1", "x2"):
        _span(key, tf[key])
    shots = set(tf["shots"])
    if tf.get("figure_shots") is not None and tf["figure_shots"] not in shots:
        raise TermFrequencyError(
            f"term_frequency.figure_shots: {tf['figure_shots']} is not in shots {tf['shots']}"
        )
    if not set(tf.get("table_shots") or []) <= shots:
        raise TermFrequencyError(
            f"term_frequency.table_shots: {tf['table_shots']} are not all in shots {tf['shots']}"
        )
    for operation in tf["operations"]:
        if operation not in OPERATIONS:
            raise TermFrequencyError(f"term_frequency.operations: unknown {operation!r}")
