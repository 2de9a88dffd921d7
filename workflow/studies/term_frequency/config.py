"""The `term_frequency:` config section: the operations the study knows, the operand ranges,
and the check the rules run before any job (rules/term_frequency.smk)."""

from __future__ import annotations

from collections.abc import Sequence

OPERATIONS = {"plus": lambda a, b: a + b, "times": lambda a, b: a * b}
# term_frequency.protocol: `embedded` scores the tiny suite on the format its corpus plants
# ("Q:What is x1 plus x2? A: y" lines) and counts every standalone number; `pythia` is Pythia's
# own case study (case-studies/term_frequency/ in EleutherAI/pythia): its prompts and few-shot
# joining, its windowed number count on the decoded rows and its fixed Fig. 7 bins.
PROTOCOLS = ("embedded", "pythia")


class TermFrequencyError(ValueError):
    """Bad input for the term-frequency study; the message names it."""


def check_protocol(protocol: str) -> str:
    """`protocol` when it is one of PROTOCOLS."""
    if protocol not in PROTOCOLS:
        raise TermFrequencyError(f"unknown protocol {protocol!r}: use one of {list(PROTOCOLS)}")
    return protocol


def span(key: str, lo_hi: Sequence[int]) -> list[int]:
    """The operand values of term_frequency.`key` ([lo, hi], inclusive)."""
    lo, hi = (int(v) for v in lo_hi)
    if not 0 <= lo <= hi:
        raise TermFrequencyError(f"term_frequency.{key} must be [lo, hi] with 0 <= lo <= hi")
    return list(range(lo, hi + 1))


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
    protocol = tf.get("protocol", "embedded")
    if protocol not in PROTOCOLS:
        raise TermFrequencyError(
            f"term_frequency.protocol: {protocol!r} is not one of {list(PROTOCOLS)}"
        )
    for key in ("x1", "x2"):
        span(key, tf[key])
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
