"""Pythia's own count of numbers (term_frequency.protocol: pythia): run_freq_count.py of
EleutherAI/pythia's term-frequency case study. The row is decoded as transformers decoded it then
(``decode_rows_as_pythia``: special tokens kept, spaces before punctuation cleaned up), a space is
put before it, and every window "space, 1-5 digits, space, 1-3 words each followed by whitespace,
1-5 digits" (``PYTHIA_WINDOW``) is found, overlapping; each window counts every 1-5 digit run in
it (``pythia_window_numbers``, ``count_windows``). ``TokenBytes`` decodes a block of rows in one
vectorised gather of the tokens' bytes, then one regex pass per row.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow.studies.term_frequency.config import TermFrequencyError

# Pythia's window (protocol pythia): the space before it, then a lookahead so that windows
# overlap; group 1 is the window after that space (the space alone has no digits to count)
_NUM, _WORD = r"\d{1,5}", rf"[\w{re.escape(string.punctuation)}]+"
PYTHIA_WINDOW = re.compile(rf" (?=({_NUM} (?:{_WORD}\s+){{1,3}}{_NUM}))")
PYTHIA_NUMBER = re.compile(_NUM)
# transformers' decode(clean_up_tokenization_spaces=True), its default when Pythia counted
_CLEAN_UP = [
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
]  # fmt: skip


def clean_up_spaces(text: str) -> str:
    """What transformers' decode did to a decoded text by default when Pythia counted
    (clean_up_tokenization_spaces): the space before . ? ! , and English contractions removed."""
    for a, b in _CLEAN_UP:
        text = text.replace(a, b)
    return text


def _byte_of_char() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2's): printable Latin-1 bytes stand for themselves, the
    other bytes for the characters from U+0100 on, in byte order."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    rest = [b for b in range(256) if b not in set(keep)]
    return {chr(b): b for b in keep} | {chr(0x100 + i): b for i, b in enumerate(rest)}


@dataclass(frozen=True)
class TokenBytes:
    """Per vocabulary id: the bytes a byte-level BPE decodes the token to, token i's being
    data[offsets[i]:offsets[i + 1]]. A row decodes to its tokens' bytes read as UTF-8 (bad
    sequences replaced by U+FFFD), as the tokenizers library's ByteLevel decoder does; special
    tokens are kept (skip_special_tokens=False)."""

    data: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_tokenizer(cls, tokenizer_path: str | os.PathLike) -> TokenBytes:
        tok = _load_tokenizer(tokenizer_path)
        byte_of = _byte_of_char()
        pieces = []
        for i in range(tok.get_vocab_size(with_added_tokens=True)):
            t = tok.id_to_token(i) or ""
            # as the decoder: a token with a character outside the alphabet keeps its UTF-8
            pieces.append(bytes(byte_of[c] for c in t) if set(t) <= byte_of.keys() else t.encode())
        offsets = np.cumsum([0, *map(len, pieces)])
        return cls(np.frombuffer(b"".join(pieces), np.uint8), offsets.astype(np.int64))

    def decode(self, rows: np.ndarray, block_tokens: int = 1 << 20) -> list[str]:
        """The text of each row of `rows` (n, L), in blocks of about `block_tokens` tokens."""
        rows = np.asarray(rows)
        vocab = len(self.offsets) - 1
        if rows.size and (rows.min() < 0 or rows.max() >= vocab):
            bad = rows[(rows < 0) | (rows >= vocab)][0]
            raise TermFrequencyError(f"token id {int(bad)} is outside the tokenizer's {vocab} ids")
        out = []
        step = max(1, block_tokens // max(1, rows.shape[1]))
        for a in range(0, len(rows), step):
            ids = rows[a : a + step].astype(np.int64)
            start, size = self.offsets[ids], np.diff(self.offsets)[ids]
            flat = size.reshape(-1)
            first = np.repeat(start.reshape(-1) - np.cumsum(flat) + flat, flat)
            buf = self.data[first + np.arange(first.size)].tobytes()
            ends = np.cumsum(size.sum(axis=1))
            out += [
                buf[i:j].decode("utf-8", "replace")
                for i, j in zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True)
            ]
        return out


def decode_rows_as_pythia(rows: np.ndarray, token_bytes: TokenBytes) -> list[str]:
    """The rows decoded as Pythia's count decoded them (GPTNeoXTokenizerFast.batch_decode):
    special tokens kept, then clean_up_spaces."""
    return [clean_up_spaces(t) for t in token_bytes.decode(rows)]


def _window_digits(text: str) -> list[str]:
    """The digit runs Pythia counts in one decoded row: those of every window of PYTHIA_WINDOW
    in " " + text, once per window they are in (one findall over the windows joined by
    newlines)."""
    windows = PYTHIA_WINDOW.findall(" " + text)
    return PYTHIA_NUMBER.findall("\n".join(windows)) if windows else []


def pythia_window_numbers(text: str) -> list[int]:
    """Pythia's count of one decoded row: each number once per window it is in (int: leading
    zeros dropped, any Unicode decimal digits read)."""
    return [int(n) for n in _window_digits(text)]


def count_windows(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pythia's count over decoded rows: (row index, value) arrays, one entry per time a number
    is counted (pythia_window_numbers), as count_numbers returns them."""
    found, per_row = [], []
    for text in texts:
        digits = _window_digits(text)
        found += digits
        per_row.append(len(digits))
    values = np.fromiter(map(int, found), np.int64, len(found))
    return np.repeat(np.arange(len(per_row), dtype=np.int64), per_row), values


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
