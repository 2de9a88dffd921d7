"""GPT-NeoX v1.0 AnnealingLR (cosine) and its LambdaLR form."""

import math

import pytest
import torch

from workflow.train.lr_schedule import lambda_for, neox_lr

PYTHIA = dict(max_lr=1e-3, min_lr=1e-4, warmup_iters=0.01 * 143000, decay_iters=143000)


class AnnealingLR:
    """gpt-neox 71df4d5 megatron/learning_rates.py AnnealingLR.get_lr (cosine), verbatim."""

    def __init__(self, start_lr, warmup_iter, total_iters, min_lr):
        self.start_lr, self.warmup_iter, self.end_iter, self.min_lr = (
            start_lr,
            warmup_iter,
            total_iters,
            min_lr,
        )

    def get_lr(self, num_iters):
        num_iters_ = min(num_iters, self.end_iter - self.warmup_iter)
        if self.warmup_iter > 0 and num_iters <= self.warmup_iter:
            return float(self.start_lr) * num_iters_ / self.warmup_iter
        num_iters_ = num_iters_ - self.warmup_iter
        lr = self.start_lr / 2.0 * (math.cos(math.pi * num_iters_ / self.end_iter) + 1)
        return max(lr, self.min_lr)


@pytest.mark.parametrize(
    "kw",
    [
        PYTHIA,
        dict(max_lr=1.2e-4, min_lr=1.2e-5, warmup_iters=0.96, decay_iters=96),
        dict(max_lr=1e-3, min_lr=0.0, warmup_iters=0, decay_iters=50),
    ],
)
def test_matches_neox_annealing_lr(kw):
    ref = AnnealingLR(kw["max_lr"], kw["warmup_iters"], kw["decay_iters"], kw["min_lr"])
    for step in list(range(0, 3000)) + list(range(3000, kw["decay_iters"] + 2000, 997)):
        assert neox_lr(step, **kw) == ref.get_lr(step)


def test_pythia_shape():
    assert neox_lr(0, **PYTHIA) == 0.0  # warmup starts at 0: no min_lr clip during warmup
    assert neox_lr(715, **PYTHIA) == pytest.approx(5e-4)
    assert neox_lr(1430, **PYTHIA) == pytest.approx(1e-3)
    # the cosine period is decay_iters, so the min_lr floor is reached near 115k and then held
    assert neox_lr(114_000, **PYTHIA) > 1e-4
    assert neox_lr(116_000, **PYTHIA) == 1e-4
    assert neox_lr(143_000, **PYTHIA) == 1e-4


def test_lambda_lr_gives_lr_of_previous_step_index():
    """Optimizer step s (1-based) runs with neox_lr(s - 1), as NeoX + DeepSpeed do."""
    kw = dict(max_lr=1e-3, min_lr=1e-4, warmup_iters=4.0, decay_iters=20)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=kw["max_lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda_for(**kw))
    for s in range(1, 25):
        assert opt.param_groups[0]["lr"] == pytest.approx(neox_lr(s - 1, **kw), rel=1e-12)
        opt.step()
        sched.step()
    # the lambda is a plain function: LambdaLR's state_dict carries only counters
    assert sched.state_dict()["lr_lambdas"] == [None]


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay_iters"):
        neox_lr(1, max_lr=1.0, min_lr=0.0, warmup_iters=0, decay_iters=0)
    with pytest.raises(ValueError, match="max_lr"):
        lambda_for(max_lr=0.0, min_lr=0.0, warmup_iters=0, decay_iters=10)
