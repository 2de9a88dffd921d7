"""The DeepSpeed engine of one model: NeoX's parameter groups, the batch layout over the ranks,
the ZeRO stage, Pythia's DeepSpeed settings (reference/pythia.md §1.2), tensor parallelism and the
LR schedule.

Ranks = data-parallel x tensor-parallel (`models.X.model_parallel`, Pythia's 2 for 6.9B and 4 for
12B). Tensor parallelism is DeepSpeed's AutoTP training mode (`tensor_parallel.autotp_size`),
which shards the model inside `deepspeed.initialize` by transformers' GPT-NeoX TP plan: the fused
QKV and the MLP up-projection column-wise (each rank holds whole heads), the attention output and
MLP down-projection row-wise (all-reduced), the LM head column-wise with its logits gathered;
embeddings and LayerNorms stay replicated. DeepSpeed builds a (data, tensor) mesh in which a
tensor-parallel group is `model_parallel` consecutive ranks (`tp_layout`), so one node's block of
ranks (srun --distribution=block, torchrun) holds whole TP groups; ZeRO partitions over the
data-parallel group.
"""

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


def tp_layout(spec: ModelSpec, world_size: int) -> tuple[int, int]:
    """(data_parallel, tensor_parallel) sizes of `world_size` ranks training `spec`.

    The tensor-parallel size is the config's `model_parallel`; every group of that many
    consecutive ranks is one model replica (DeepSpeed's mesh, checked in make_engine)."""
    tp = spec.model_parallel
    if world_size % tp:
        raise TrainingError(
            f"models.{spec.name}.model_parallel {tp}: this job has {world_size} rank(s), not a "
            f"multiple of the tensor-parallel size (ranks = data-parallel x {tp})"
        )
    if spec.num_attention_heads % tp:
        raise TrainingError(
            f"models.{spec.name}.model_parallel {tp} does not divide num_attention_heads "
            f"{spec.num_attention_heads} (each tensor-parallel rank holds whole heads)"
        )
    return world_size // tp, tp


def batch_layout(spec: ModelSpec, training: TrainingSpec, data_parallel: int) -> tuple[int, int]:
    """(micro_batch_size, gradient_accumulation_steps) over `data_parallel` replicas.

    The global batch is split over the data-parallel ranks only: the ranks of one
    tensor-parallel group train on the same rows. The config's micro-batch is kept when it fits
    and shrunk to B / data_parallel when that many replicas would overshoot the global batch.
    """
    b = training.global_batch_size
    if b % data_parallel:
        raise TrainingError(
            f"training.global_batch_size {b} is not divisible by the {data_parallel} "
            "data-parallel ranks this job was started with"
        )
    per_rank = b // data_parallel
    micro = min(spec.micro_batch_size, per_rank)
    if per_rank % micro:
        raise TrainingError(
            f"models.{spec.name}.micro_batch_size {micro} does not divide the {per_rank} "
            f"samples per rank (global batch {b} over {data_parallel} data-parallel ranks)"
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
    spec: ModelSpec,
    training: TrainingSpec,
    micro: int,
    gas: int,
    stage: int | None = None,
    tensor_parallel: int = 1,
) -> dict[str, Any]:
    """Pythia's DeepSpeed settings (reference/pythia.md §1.2) for one model; with
    `tensor_parallel` > 1 AutoTP shards it over that many ranks."""
    bucket = spec.zero_bucket_size or training.zero_bucket_size
    config = {
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
    if tensor_parallel > 1:
        config["tensor_parallel"] = {"autotp_size": tensor_parallel}
        # DeepSpeed checks train_batch_size against micro x accumulation x *all* ranks before it
        # builds the (data, tensor) mesh; micro-batch and accumulation alone are unambiguous
        del config["train_batch_size"]
    return config


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
    """(engine, micro_batch, accumulation_steps) of `model` over `world_size` ranks: data
    parallel x `spec.model_parallel` tensor parallel (AutoTP shards `model` in place)."""
    import deepspeed
    from torch.optim.lr_scheduler import LambdaLR

    if training.zero_stage not in (0, 1, 2):
        # Under ZeRO-3 engine.module.save_pretrained silently writes empty tensors.
        raise TrainingError(f"training.zero_stage {training.zero_stage}: only 0, 1, 2 supported")
    check_precision(spec)
    dp, tp = tp_layout(spec, world_size)
    micro, gas = batch_layout(spec, training, dp)
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
        config=deepspeed_config(spec, training, micro, gas, stage, tensor_parallel=tp),
        # NeoX's AnnealingLR, not DeepSpeed's WarmupCosineLR (different curve, lr 0 twice)
        lr_scheduler=lambda opt: LambdaLR(opt, multiplier),
    )
    if tp > 1:
        check_mesh(tp)
    return engine, micro, gas


def check_mesh(tp: int) -> None:
    """DeepSpeed's (data, tensor) mesh is the one the launch placed: tensor-parallel groups of
    `tp` consecutive ranks (one node holds whole groups), data-parallel rank = rank // tp."""
    import torch.distributed as dist
    from deepspeed.utils import groups

    rank = dist.get_rank()
    got = (groups.get_data_parallel_rank(), groups.get_tensor_model_parallel_rank())
    if got != (rank // tp, rank % tp) or groups.get_tensor_model_parallel_world_size() != tp:
        raise TrainingError(
            f"rank {rank}: DeepSpeed placed it at (data-parallel, tensor-parallel) rank {got}, "
            f"not {(rank // tp, rank % tp)}: its tensor-parallel groups are not {tp} "
            "consecutive ranks, which the launch keeps inside one node"
        )


def parallel_groups(tp: int):
    """(data-parallel group, tensor-parallel group) of this rank; (None, None) without tensor
    parallelism (the data-parallel group is then the whole world)."""
    if tp == 1:
        return None, None
    from deepspeed.utils import groups

    return groups.get_data_parallel_group(), groups.get_tensor_model_parallel_group()
