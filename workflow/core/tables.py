"""The one table writer: every table of a run (results/{run}/tables/, the memorization scores)
is written here, CSV or parquet by the file's extension, and every Markdown table is laid out
here.

CSV is pandas' default rendering without the index (``repr`` floats, empty cells for NaN/None):
the eval table, the score tables, the term-frequency and memorization tables and the
intervention table have always been written that way, so their bytes do not depend on which
stage wrote them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from workflow.core.io import atomic_path

TABLE_SUFFIXES = (".csv", ".parquet")


def write_table(table, out_path: str | os.PathLike) -> None:
    """Write the DataFrame `table` atomically as .csv or .parquet (by extension), no index."""
    out_path = Path(out_path)
    if out_path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"table {out_path}: expected a .csv or .parquet file name")
    with atomic_path(out_path) as tmp:
        if out_path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)


def markdown_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[tuple[str, Sequence[str]]],
    *,
    align: str = "---",
) -> str:
    """A titled Markdown table: ``### title``, a header ``| model | <columns> |`` and one line
    ``| label | cells |`` per (label, cells) of `rows`; `align` is the separator of every
    column after the first ("---", or "---:" for right-aligned numbers). Ends in a newline."""
    lines = [
        f"### {title}",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---|" + f"{align}|" * len(columns),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines) + "\n"
