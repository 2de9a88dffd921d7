"""The DeepSpeed engine of one model: NeoX's parameter groups, the batch layout over the ranks,
the ZeRO stage, Pythia's DeepSpeed settings (reference/pythia.md §1.2) and the LR schedule."""

from __future__ import annotations

from typing import Any

import torch

from workflow.core.config import ModelSpec, TrainingSpec
from workflow.train.errors import TrainingError
from workflow.train.lr_schedule import lambda_for

# Pythia's fp16 dynamic loss scaling (reference/pythia.md §1.2).
FP16_LOSS_SCALE = {
    "enabled": True,
    "loss_scale": 0,
    "initial_scale_power": 12,
    "loss_scale_window": 1000,
    "hysteresis": 2,
    "min_loss_scale": 1,
}


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """NeoX's weight-decay split (megatron/model/utils.py): no decay on biases and LayerNorm
    parameters, decay on every other (>= 2-D) weight, embeddings included."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def batch_layout(spec: ModelSpec, training: TrainingSpec, world_size: int) -> tuple[int, int]:
    """(micro_batch_size, gradient_accumulation_steps) for this world size.

    Every rank is data-parallel here (transformers' GPT-NeoX has no tensor parallelism; ZeRO
    shards optimizer state instead), so the config's micro-batch is kept when it fits and
    shrunk to B / world_size when that many ranks would overshoot the global batch.
    """
    b = training.global_batch_size
    if b % world_size:
        raise TrainingError(
            f"training.global_batch_size {b} is not divisible by the {world_size} "
            "data-parallel ranks this job was started with"
        )
    per_rank = b // world_size
    micro = min(spec.micro_batch_size, per_rank)
    if per_rank % micro:
        raise TrainingError(
            f"models.{spec.name}.micro_batch_size {micro} does not divide the {per_rank} "
            f"samples per rank (global batch {b} over {world_size} ranks)"
        )
    return micro, per_rank // micro


def effective_zero_stage(training: TrainingSpec, spec: ModelSpec, world_size: int) -> int:
    """The ZeRO stage the engine runs. ZeRO partitions optimizer state across data-parallel
    ranks; a single fp32 rank has nothing to partition, and DeepSpeed's stage-1 optimizer would
    only add flat-buffer copies (~10% of a CPU step, bench/train.py). Stage 0 is the same maths
    there (test_zero0_matches_zero1: identical losses), so one fp32 rank runs it. Mixed
    precision keeps the configured stage: its optimizers differ between stages."""
    if world_size == 1 and spec.precision == "fp32":
        return 0
    return training.zero_stage


def deepspeed_config(
    spec: ModelSpec, training: TrainingSpec, micro: int, gas: int, stage: int | None = None
) -> dict[str, Any]:
    """Pythia's DeepSpeed settings (reference/pythia.md §1.2) for one model."""
    bucket = spec.zero_bucket_size or training.zero_bucket_size
    return {
        "train_batch_size": training.global_batch_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": gas,
        "gradient_clipping": training.gradient_clipping,
        "steps_per_print": 2**62,
        "wall_clock_breakdown": False,
        "optimizer": {
            "type": "Adam",
            "params": {
                "lr": spec.lr,
                "betas": list(training.adam_betas),
                "eps": training.adam_eps,
                "weight_decay": training.weight_decay,
                # decoupled decay, as NeoX's FusedAdam; torch's AdamW needs no JIT op build
                "adam_w_mode": True,
                "torch_adam": True,
            },
        },
        "zero_optimization": {
            "stage": training.zero_stage if stage is None else stage,
            "allgather_partitions": True,
            "reduce_scatter": True,
            "overlap_comm": training.zero_overlap_comm,
            "contiguous_gradients": True,
            "reduce_bucket_size": bucket,
            "allgather_bucket_size": bucket,
        },
        "fp16": FP16_LOSS_SCALE if spec.precision == "fp16" else {"enabled": False},
        "bf16": {"enabled": spec.precision == "bf16"},
    }


def check_precision(spec: ModelSpec) -> None:
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    supported = {
        "fp32": True,
        "fp16": acc.is_fp16_supported(),
        "bf16": acc.is_bf16_supported(),
    }
    if not supported.get(spec.precision, False):
        raise TrainingError(
            f"models.{spec.name}.precision: {spec.precision} is not supported on this "
            f"{acc.device_name()} accelerator; use fp32 here (Pythia's fp16/bf16 need a GPU)"
        )


def make_engine(model, spec: ModelSpec, training: TrainingSpec, world_size: int):
    import deepspeed
    from torch.optim.lr_scheduler import LambdaLR

    if training.zero_stage not in (0, 1, 2):
        # Under ZeRO-3 engine.module.save_pretrained silently writes empty tensors.
        raise TrainingError(f"training.zero_stage {training.zero_stage}: only 0, 1, 2 supported")
    check_precision(spec)
    micro, gas = batch_layout(spec, training, world_size)
    stage = effective_zero_stage(training, spec, world_size)
    multiplier = lambda_for(
        max_lr=spec.lr,
        min_lr=spec.min_lr,
        warmup_iters=training.warmup_iters,
        decay_iters=training.lr_decay_iters,
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=param_groups(model, training.weight_decay),
        config=deepspeed_config(spec, training, micro, gas, stage),
        # NeoX's AnnealingLR, not DeepSpeed's WarmupCosineLR (different curve, lr 0 twice)
        lr_scheduler=lambda opt: LambdaLR(opt, multiplier),
    )
    return engine, micro, gas
