"""Model sizes in parameter order: the one order of the rows of every table and of the lines,
panels and ticks of every figure."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmbt])\b", re.IGNORECASE)
_UNIT = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def size_key(size: str) -> tuple[float, str]:
    """Sort key for model names by parameter count: 'tiny-70m' < 'tiny-1b' < 'tiny-1.4b' < '12b'."""
    matches = list(_SIZE.finditer(size))
    m = matches[-1] if matches else None
    value = float(m.group(1)) * _UNIT[m.group(2).lower()] if m else math.inf
    return (value, size)


def size_order(present: Iterable[str], given: Sequence[str] | None = None) -> list[str]:
    """`given` (the config's order) when there is one, else the distinct sizes of `present`
    by parameter count."""
    if given:
        return list(given)
    return sorted(dict.fromkeys(present), key=size_key)
