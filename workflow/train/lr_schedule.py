"""GPT-NeoX v1.0 learning-rate schedule (`AnnealingLR`, decay style "cosine"), as Pythia used it.

Transcribed from EleutherAI/gpt-neox 71df4d5 `megatron/learning_rates.py`:

    n  = min(num_iters, end_iter - warmup_iter)
    if warmup_iter > 0 and num_iters <= warmup_iter:  return max_lr * n / warmup_iter
    lr = max_lr / 2 * (cos(pi * (n - warmup_iter) / end_iter) + 1)
    return max(lr, min_lr)

Two details differ from a textbook warmup-cosine and matter for exactness:
* the cosine period is `end_iter` (the decay iters), not `end_iter - warmup`, so with Pythia's
  numbers (warmup 1430, decay 143000) the `min_lr` clip engages near step 115k and the LR then
  stays flat at `min_lr` for the last ~28k steps;
* the warmup branch returns early, *without* the min_lr clip: warmup starts at exactly 0
  (the first optimizer step has LR 0) and only the decay part is floored at min_lr.

Which index an optimizer step uses: NeoX builds AnnealingLR with `last_iter=0` (the constructor
sets the LR for num_iters = 0) and DeepSpeed's `engine.step()` calls `lr_scheduler.step()` *after*
the optimizer update. So optimizer step s (1-based; the step that turns checkpoint s-1 into
checkpoint s) uses `neox_lr(s - 1, ...)`. torch's `LambdaLR` has the same convention (its
constructor applies lambda(0), each `.step()` advances by one), so `LambdaLR(opt, lambda_for(...))`
handed to DeepSpeed as a client scheduler reproduces NeoX step for step.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def neox_lr(
    step: int | float, *, max_lr: float, min_lr: float, warmup_iters: float, decay_iters: int
) -> float:
    """The LR NeoX's AnnealingLR returns for `num_iters == step` (cosine decay style)."""
    if decay_iters <= 0:
        raise ValueError(f"lr schedule: decay_iters must be positive, got {decay_iters}")
    # NeoX caps the iteration so the cosine never runs past end_iter - warmup (the LR then
    # holds whatever value it had there, which is below min_lr for Pythia's settings anyway).
    n = min(step, decay_iters - warmup_iters)
    if warmup_iters > 0 and step <= warmup_iters:
        # NeoX returns here, before the min_lr clip: warmup really starts from 0.
        return float(max_lr) * n / warmup_iters
    n = n - warmup_iters
    lr = max_lr / 2.0 * (math.cos(math.pi * n / decay_iters) + 1)
    return max(lr, min_lr)


def lambda_for(
    *, max_lr: float, min_lr: float, warmup_iters: float, decay_iters: int
) -> Callable[[int], float]:
    """The `torch.optim.lr_scheduler.LambdaLR` multiplier (neox_lr / max_lr) for an optimizer
    whose base LR is `max_lr`. LambdaLR calls it with its `last_epoch`, i.e. the number of
    scheduler steps taken so far, which is the NeoX `num_iters` (see the module docstring).

    The returned object is a plain function so that LambdaLR.state_dict() does not try to pickle
    its closure (it stores only the counters, which is all a resume needs).
    """
    if max_lr <= 0:
        raise ValueError(f"lr schedule: max_lr must be positive, got {max_lr}")

    def multiplier(num_iters: int) -> float:
        return (
            neox_lr(
                num_iters,
                max_lr=max_lr,
                min_lr=min_lr,
                warmup_iters=warmup_iters,
                decay_iters=decay_iters,
            )
            / max_lr
        )

    return multiplier
