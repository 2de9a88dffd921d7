"""How often each operand occurs in the data a checkpoint has seen (rule term_frequency_counts).

``NumberTokens`` + ``count_numbers`` count standalone numbers in token rows without decoding
them: per-vocabulary tables say where a token's digit runs are, and numbers split over several
tokens (``' 4' '9' '5'``) are joined in one vectorised pass over the few digit-bearing
positions. ``count_numbers_reference`` is the plain definition (decode each row, regex).
``cumulative_counts`` gives the count of each x1 in the rows ``[0, step * B)`` every checkpoint
has trained on, in one pass over the memory-mapped samples.

Two definitions (term_frequency.protocol), each training row counted on its own (the rows the
model saw):

- ``embedded`` (the default): every standalone number once. A number is a maximal run of ASCII
  digits with no ASCII letter or digit on either side (the regex
  ``(?<![0-9A-Za-z])[0-9]+(?![0-9A-Za-z])`` on the decoded row), written without leading zeros
  ("07" is not 7); counted on the token ids (``count_numbers``).
- ``pythia``: Pythia's case study (run_freq_count.py in EleutherAI/pythia). The row is decoded as
  transformers decoded it then (``decode_rows_as_pythia``: special tokens kept, spaces before
  punctuation cleaned up), a space is put before it, and every window "space, 1-5 digits, space,
  1-3 words each followed by whitespace, 1-5 digits" (``PYTHIA_WINDOW``; a word is word
  characters and ASCII punctuation) is found, windows starting at every such space, overlapping.
  Each window counts every 1-5 digit run in it (``PYTHIA_NUMBER``, leading zeros dropped by int):
  a number inside several windows counts several times, a number in none not at all
  (``pythia_window_numbers``, ``count_windows``). It needs the decoded text: ``TokenBytes``
  decodes a block of rows in one vectorised gather of the tokens' bytes (as the byte-level
  decoder does, without its per-token Python objects), then one regex pass per row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workflow.studies.term_frequency.config import TermFrequencyError, check_protocol
from workflow.studies.term_frequency.pythia_counts import (
    TokenBytes,
    _load_tokenizer,
    count_windows,
    decode_rows_as_pythia,
)

MAX_DIGITS = 5  # Razeghi et al. score the first 1-5 digit number: longer ones are not operands
NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?![0-9A-Za-z])")
_POW10 = 10 ** np.arange(MAX_DIGITS + 1, dtype=np.int64)

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


def _digit_positions(flat: np.ndarray, table: NumberTokens) -> np.ndarray:
    """Positions of `flat` whose token holds a digit; an id outside the vocabulary is refused."""
    vocab = len(table.has_digit)
    if flat.dtype == np.uint16:  # one lookup finds the digits and any out-of-range id
        pos = np.flatnonzero(table.has_digit_u16[flat])
        bad = flat[pos][flat[pos] >= vocab]
    else:
        bad = flat[(flat >= vocab) | (flat < 0)]
        pos = np.flatnonzero(table.has_digit[flat]) if not bad.size else None
    if bad.size:
        raise TermFrequencyError(f"token id {int(bad[0])} is outside the tokenizer's {vocab} ids")
    return pos


def _internal_numbers(pos, ids, table: NumberTokens, width: int):
    """(row, value) of the numbers complete inside one token (digits touching neither end)."""
    lo, hi = table.internal_offsets[ids], table.internal_offsets[ids + 1]
    inner = np.flatnonzero(hi - lo)
    reps = (hi - lo)[inner]
    first = np.repeat(lo[inner] - np.cumsum(reps) + reps, reps) + np.arange(reps.sum())
    return np.repeat(pos[inner] // width, reps), table.internal_values[first]


def _single_token_numbers(flat, pos, ids, table: NumberTokens, width: int):
    """The common case, one token holding a whole number (" 51", "7" between non-digits):
    its value and edge checks straight from the tables, no chain to follow. Returns (row,
    value) of those numbers and the mask of the positions left for the chains (None: all)."""
    col = pos % width
    left_open = table.starts_digit[ids]
    right_open = table.ends_digit[ids]
    joined = np.zeros(pos.size, bool)  # joined to the next digit-bearing position
    if pos.size > 1:
        joined[:-1] = (pos[1:] - pos[:-1] == 1) & right_open[:-1] & left_open[1:] & (col[1:] != 0)
    alone = table.single[ids]
    alone[1:] &= ~joined[:-1]
    alone &= ~joined
    if not alone.any():
        return None, None, None
    a_pos, a_ids, a_col = pos[alone], ids[alone], col[alone]
    ok = ~(table.last_alpha[flat[a_pos - 1]] & (a_col != 0)) | ~left_open[alone]
    nxt = flat[np.minimum(a_pos + 1, flat.size - 1)]
    ok &= ~(table.first_alpha[nxt] & (a_col != width - 1)) | ~right_open[alone]
    ok &= table.single_ok[a_ids]
    return a_pos[ok] // width, table.single_value[a_ids[ok]], ~alone


def _chained_numbers(flat, pos, ids, table: NumberTokens, width: int):
    """(row, value) of the numbers made of the elements (NumberTokens.codes) at `pos`: each
    chain of elements at adjacent positions of a row that continue each other is one number,
    valid when both its edges are and it has at most MAX_DIGITS digits, no leading zero."""
    both = table.codes[ids].reshape(-1)
    which = np.flatnonzero(both)
    code = both[which]
    e_pos = pos[which >> 1]
    if not code.size:
        return None, None
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
    return f_pos[valid] // width, np.add.reduceat(value, starts)[valid]


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
    pos = _digit_positions(flat, table)
    ids = flat[pos]
    found_rows, found_values = [], []
    if table.internal_values.size:
        r, v = _internal_numbers(pos, ids, table, width)
        found_rows.append(r)
        found_values.append(v)
    r, v, rest = _single_token_numbers(flat, pos, ids, table, width)
    if rest is not None:
        found_rows.append(r)
        found_values.append(v)
        pos, ids = pos[rest], ids[rest]
    r, v = _chained_numbers(flat, pos, ids, table, width)
    if r is not None:
        found_rows.append(r)
        found_values.append(v)
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
    protocol: str = "embedded",
) -> np.ndarray:
    """counts[i, j]: occurrences of the number values[j] in the sample rows
    [0, steps[i] * global_batch_size) that checkpoint steps[i] has trained on, as `protocol`
    counts them (embedded: count_numbers on the token ids; pythia: count_windows on the decoded
    rows). One pass over the memory-mapped sample file in chunks of whole rows."""
    check_protocol(protocol)
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
    if protocol == "pythia":
        token_bytes = TokenBytes.from_tokenizer(tokenizer_path)

        def count(rows):
            return count_windows(decode_rows_as_pythia(rows, token_bytes))
    else:
        table = NumberTokens.from_tokenizer(tokenizer_path)

        def count(rows):
            return count_numbers(rows, table)

    hist = np.zeros((len(bounds) + 1, len(values)), np.int64)
    stop = int(bounds[-1]) if bounds.size else 0
    width = int(ds.sizes[0]) if len(ds) else 1
    chunk = max(1, chunk_tokens // width)
    for a in range(0, stop, chunk):
        b = min(stop, a + chunk)
        rows, vals = count(ds.get_rows(a, b))
        col = lut[vals]
        hit = col >= 0
        bucket = np.searchsorted(bounds, rows[hit] + a, side="right")
        hist += np.bincount(bucket * len(values) + col[hit], minlength=hist.size).reshape(
            hist.shape
        )
    per_bound = np.cumsum(hist, axis=0)[: len(bounds)]
    return per_bound[np.searchsorted(bounds, np.asarray(steps, np.int64) * global_batch_size)]
