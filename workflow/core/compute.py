"""The time model's primitives (workflow.plan.resources builds every job's FLOPs, GPU-hours and
Slurm resources on them; the config uses them to size training segments by hours).

FLOPs follow Kaplan et al.'s 6·N·D for training (forward + backward) and 2·N·D for a forward
pass; GPU-hours = FLOPs / (compute.mfu · compute.gpu_peak_tflops) / 3600.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from workflow.core.validation import ConfigError

# GPT-NeoX-20B's tokenizer (reference §3.1): the vocabulary of a `pretrained` tokenizer.
NEOX_VOCAB = 50277


def config_vocab_size(config: Mapping[str, Any]) -> int:
    """The vocabulary the config's tokenizer has (before Megatron's padding)."""
    tok = config["data"]["tokenizer"]
    return NEOX_VOCAB if tok["kind"] == "pretrained" else tok["vocab_size"]


def training_flops(params: int, tokens: float) -> float:
    """6·N·D: forward (2ND) and backward (4ND); activation recomputation is not counted (MFU,
    not hardware utilization)."""
    return 6.0 * params * tokens


def forward_flops(params: int, tokens: float) -> float:
    """2·N·D: one forward pass over `tokens` tokens (evaluation, memorization scoring)."""
    return 2.0 * params * tokens


def gpu_hours(flops: float, compute: Mapping[str, Any]) -> float:
    return flops / (compute["mfu"] * compute["gpu_peak_tflops"] * 1e12) / 3600.0


def segment_steps_for_hours(
    step_hours: float, train_iters: int, schedule: Sequence[int], hours: float, model: str
) -> int:
    """Steps per training segment so that every segment takes at most `hours` when one step
    takes `step_hours` (wall): the run cut into the fewest equal segments that fit, less the
    widest gap between scheduled checkpoints (a segment ends on the first scheduled step at
    least this many steps after its start, so it may run up to one gap longer)."""
    steps = sorted(set(schedule))
    gap = max((b - a for a, b in zip(steps, steps[1:], strict=False)), default=1)
    fit = math.floor(hours / step_hours) - gap
    if fit < 1:
        raise ConfigError(
            f"training.hours_per_segment: {hours} h is less than {model} takes for "
            f"{gap + 1} steps (its widest checkpoint gap + 1: {step_hours * (gap + 1):.2f} h "
            "of the time model); raise it or checkpoint more often"
        )
    jobs = math.ceil(train_iters / fit)
    return max(1, train_iters // jobs)
