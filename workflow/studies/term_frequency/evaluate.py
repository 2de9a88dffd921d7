"""The arithmetic tasks on a checkpoint (rule term_frequency_eval): lm-eval with logged samples,
from which the accuracy per operand x1 comes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from workflow.eval.evaluate import evaluate_checkpoint


def per_x1_accuracy(samples: Iterable[dict]) -> dict[int, tuple[int, int]]:
    """{x1: (correct, documents)} from lm-eval's logged samples of one arithmetic task."""
    out: dict[int, list[int]] = {}
    for s in samples:
        c = out.setdefault(int(s["doc"]["x1"]), [0, 0])
        c[0] += int(s["exact_match"] == 1.0)
        c[1] += 1
    return {x1: (c[0], c[1]) for x1, c in sorted(out.items())}


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
