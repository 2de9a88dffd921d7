"""Result rows and the markdown table."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Result:
    name: str
    ours: str  # measured value with unit
    baseline: str
    ratio: float | None  # ours vs baseline, > 1 is better
    target: str
    passed: bool
    note: str = ""


def table(results: list[Result]) -> str:
    lines = [
        "| benchmark | ours | baseline | ratio | target | pass |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        verdict = "pass" if r.passed else "FAIL"
        lines.append(f"| {r.name} | {r.ours} | {r.baseline} | {ratio} | {r.target} | {verdict} |")
    notes = [f"- {r.name}: {r.note}" for r in results if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t
