"""Training tokens/s: our DeepSpeed step (`workflow.train.step.train_step` on a ZeRO-1 engine)
vs a plain PyTorch AdamW loop on the same model, data, batch, LR schedule and grad clipping.

Both start from the same initial weights and consume the same rows; the losses of the two runs
are reported too (they follow the same optimizer maths, so they agree to float noise).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from bench.common import Result
from workflow.core.config import SuiteConfig, validate_config, without_case_studies
from workflow.data.indexed_dataset import MMapIndexedDataset, write_indexed_dataset
from workflow.train.distributed import launcher_env
from workflow.train.engine import effective_zero_stage, make_engine, param_groups
from workflow.train.lr_schedule import lambda_for
from workflow.train.model import build_model
from workflow.train.step import lm_loss, train_step

VOCAB = 4096


def _suite(seq: int, batch: int, layers: int, hidden: int, heads: int, steps: int):
    with open(Path(__file__).resolve().parent.parent / "config" / "config.yaml") as f:
        raw = yaml.safe_load(f)
    raw["training"].update(seq_length=seq, global_batch_size=batch, train_iters=steps)
    raw["training"]["checkpoints"] = {"log_spaced": True, "every": steps}
    raw["eval"]["steps"] = [0]
    raw.pop("sizes", None)
    raw = without_case_studies(raw)  # they need the real suite
    raw["models"] = {
        "m": {"num_layers": layers, "hidden_size": hidden, "num_attention_heads": heads, "lr": 1e-3}
    }
    return SuiteConfig.from_dict(validate_config(raw))


class PlainLoop:
    """The baseline: torch AdamW (decoupled decay, the same parameter groups), NeoX's LR
    schedule through LambdaLR, clip_grad_norm_, one full batch per step."""

    def __init__(self, model, spec, training):
        self.model = model
        self.opt = torch.optim.AdamW(
            param_groups(model, training.weight_decay),
            lr=spec.lr,
            betas=training.adam_betas,
            eps=training.adam_eps,
        )
        mult = lambda_for(
            max_lr=spec.lr,
            min_lr=spec.min_lr,
            warmup_iters=training.warmup_iters,
            decay_iters=training.lr_decay_iters,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, mult)
        self.clip = training.gradient_clipping

    def step(self, data, step: int, batch: int) -> float:
        rows = data.get_rows((step - 1) * batch, step * batch).astype(np.int64)
        loss = lm_loss(self.model, torch.from_numpy(rows))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()


def run(
    work: Path,
    *,
    seq: int = 128,
    batch: int = 8,
    layers: int = 6,
    hidden: int = 384,
    heads: int = 6,
    steps: int = 12,
    warmup: int = 2,
) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    suite = _suite(seq, batch, layers, hidden, heads, steps + warmup)
    spec, training = suite.models["m"], suite.training
    rng = np.random.default_rng(0)
    rows = rng.integers(2, VOCAB, size=((steps + warmup) * batch, seq + 1))
    write_indexed_dataset(work / "samples", list(rows), np.uint16)
    data = MMapIndexedDataset(work / "samples")
    tokens = steps * batch * seq

    base_model = build_model(spec, training, VOCAB, training.seed, init=True)
    init_state = {k: v.clone() for k, v in base_model.state_dict().items()}
    loop = PlainLoop(base_model, spec, training)
    losses_base, losses_ours = [], []
    t_base = t_ours = 0.0
    with launcher_env():
        model = build_model(spec, training, VOCAB, training.seed, init=False)
        model.load_state_dict(init_state)
        engine, micro, _ = make_engine(model, spec, training, world_size=1)
        stage = effective_zero_stage(training, spec, 1)
        kw = dict(batch=batch, micro=micro, rank=0, world_size=1, own_grad_norm=stage == 0)
        # Alternate one step of each: the machine's drift and noise hit both equally.
        for s in range(1, warmup + steps + 1):
            t0 = time.perf_counter()
            losses_base.append(loop.step(data, s, batch))
            t1 = time.perf_counter()
            losses_ours.append(train_step(engine, data, s, **kw)["loss"])
            t2 = time.perf_counter()
            if s > warmup:
                t_base += t1 - t0
                t_ours += t2 - t1
    ratio = t_base / t_ours
    n_params = sum(p.numel() for p in model.parameters())
    drift = max(abs(a - b) for a, b in zip(losses_ours, losses_base, strict=True))
    return Result(
        name=(
            f"training step ({n_params / 1e6:.1f}M params, {layers}x{hidden}, seq {seq}, "
            f"batch {batch}, {torch.get_num_threads()} threads)"
        ),
        ours=f"{tokens / t_ours:,.0f} tok/s",
        baseline=f"{tokens / t_base:,.0f} tok/s",
        ratio=ratio,
        target=">= 0.9x",
        passed=ratio >= 0.9,
        note=(
            f"DeepSpeed engine (ZeRO-{stage}: one fp32 rank, see effective_zero_stage) vs a torch "
            f"AdamW loop, steps interleaved; max |loss difference| {drift:.2e}"
        ),
    )
