"""Train one segment of one Pythia model with DeepSpeed (DESIGN.md "Training as a chain of file
targets").

Segment (a, b] loads checkpoint a (model + DeepSpeed optimizer/scheduler state), runs optimizer
steps a+1 .. b and writes the scheduled checkpoints inside (a, b]. The segment with start -1 only
builds and saves the initialisation (step 0).

Conventions (reference/pythia.md §2, §3.4):
* optimizer step s (1-based) consumes rows [(s-1)·B, s·B) of the pre-shuffled sample file, so a
  step-N checkpoint has trained on rows [0, N·B); each row is seq_length+1 tokens, inputs =
  row[:-1], targets = row[1:];
* data-parallel rank r takes the r-th contiguous slice of the global batch, then splits it into
  micro-batches (DeepSpeed gradient accumulation);
* the LR of step s is NeoX's AnnealingLR at num_iters = s-1 (workflow/lr_schedule.py).

Resume is bit-exact: the data position is a function of the step, dropout is 0, and DeepSpeed
restores weights, Adam moments, the LR scheduler and the step counter; the torch RNG state is
saved too so that a future config with dropout stays exact.

Run in-process (one device) through `train_segment`, or under torchrun/srun with `main()`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import workflow
from workflow.core.checkpoint import CHECKPOINT_JSON, DEEPSPEED_DIR, DEEPSPEED_TAG
from workflow.core.config import ModelSpec, Segment, SuiteConfig, TrainingSpec
from workflow.core.identity import config_hash
from workflow.core.io import (
    ArtifactError,
    dir_digests,
    fingerprint,
    read_json,
    verify_files,
    write_json,
)
from workflow.data.indexed_dataset import MMapIndexedDataset, prefix_paths
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


class TrainingError(RuntimeError):
    """A problem the user can fix (wrong inputs, incompatible resume point); names what/where."""


# EX_TEMPFAIL: "try again". A preempted segment saved its state and exits with this code, so
# the retried job (Snakemake --retries, Slurm requeue) continues from that state.
PREEMPTED_EXIT = 75
PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1")  # Slurm: SIGTERM at the time limit, or --signal=USR1@T


class Preempted(Exception):
    """Training stopped on a signal after saving its resumable state."""


def preempt_dir(out_dirs: Mapping[int, Path], segment: Segment) -> Path:
    """Where a preempted segment leaves its state: beside its checkpoints, hidden, and not a
    Snakemake output (a failed job's outputs are deleted; this must survive until the retry)."""
    last = Path(out_dirs[segment.end])
    return last.parent / f".preempt-{segment.start}-{segment.end}"


@contextlib.contextmanager
def _preemption_signals():
    """Record SIGTERM/SIGUSR1 instead of dying: the step in flight finishes, then training saves
    and stops. Only the main thread can install handlers; elsewhere signals keep their default."""
    import signal
    import threading

    caught: dict[str, int | None] = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, _frame):
        caught["signum"] = signum

    old = {name: signal.signal(getattr(signal, name), handler) for name in PREEMPT_SIGNALS}
    try:
        yield caught
    finally:
        for name, h in old.items():
            signal.signal(getattr(signal, name), h)


# --------------------------------------------------------------------------- identities


def data_fingerprint(samples_prefix: str | os.PathLike) -> str:
    """The sample file's fingerprint: the one its producer recorded in `<prefix>.json`, else the
    sha256 of its bytes (slow for big files, hence the producer's record is preferred)."""
    bin_path, idx_path = prefix_paths(samples_prefix)
    meta = Path(str(bin_path)[: -len(".bin")] + ".json")
    if meta.exists():
        recorded = read_json(meta).get("fingerprint")
        if recorded:
            return str(recorded)
    return fingerprint([idx_path, bin_path], {})


def check_samples(samples_prefix: str | os.PathLike) -> None:
    """Refuse a sample file whose bytes are not the ones its producer wrote (the digests in
    `<prefix>.json`): a damaged file would train silently on other rows."""
    bin_path, _ = prefix_paths(samples_prefix)
    meta_path = Path(str(bin_path)[: -len(".bin")] + ".json")
    meta = read_json(meta_path) if meta_path.exists() else {}
    verify_files(
        bin_path.parent,
        meta.get("files"),
        record=meta_path,
        rule=meta.get("producer") or "pack_shuffle",
    )


def tokenizer_vocab_size(tokenizer_path: str | os.PathLike) -> int:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(tokenizer_path)).get_vocab_size(with_added_tokens=True)
    except Exception as e:  # tokenizers raises a bare Exception for unreadable files
        raise TrainingError(f"{tokenizer_path}: cannot read tokenizer: {e}") from None


def check_vocab(
    data: MMapIndexedDataset,
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    vocab: int,
    *,
    first_step: int,
    batch: int,
) -> None:
    """Refuse a tokenizer that does not match the data before any compute: by the vocabulary
    the data's producer recorded, and by the token ids of the first step to be trained."""
    bin_path, _ = prefix_paths(samples_prefix)
    meta_path = Path(str(bin_path)[: -len(".bin")] + ".json")
    recorded = read_json(meta_path).get("vocab_size") if meta_path.exists() else None
    if recorded is not None and recorded != vocab:
        raise TrainingError(
            f"{tokenizer_path}: a vocabulary of {vocab} tokens, but {meta_path} says the "
            f"samples were tokenized with {recorded}: tokenizer and data do not match"
        )
    lo, hi = (first_step - 1) * batch, min(first_step * batch, len(data))
    if hi > lo:
        top = int(data.get_rows(lo, hi).max())
        if top >= vocab:
            raise TrainingError(
                f"{bin_path}: token id {top} in rows [{lo}, {hi}) is outside the tokenizer's "
                f"vocabulary of {vocab} ({tokenizer_path}): tokenizer and data do not match"
            )


def _save_tokenizer(tokenizer_path: str | os.PathLike, out_dir: Path, model_max_length: int):
    # Lazy: the tokenizer stage owns how HF tokenizer files are written.
    from workflow.data.tokenizer import save_hf_tokenizer

    save_hf_tokenizer(tokenizer_path, out_dir, model_max_length)


# --------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LAUNCHER_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


@contextlib.contextmanager
def launcher_env():
    """The single-rank environment a launcher would have set, for a process started without one.

    Without it DeepSpeed tries MPI discovery (and fails on mpi4py; reference/training-cpu.md
    §2.2), and its engine reads LOCAL_RANK. It is removed again afterwards: a leaked RANK /
    MASTER_PORT would make a child process (a Snakemake job started from the same Python)
    believe it is rank 0 of this process's group and collide on the port.
    """
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        yield
        return
    saved = {k: os.environ.get(k) for k in _LAUNCHER_ENV}
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def setup_distributed() -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed (once per process; call inside
    `launcher_env()`); returns (rank, world_size)."""
    if not torch.cuda.is_available():
        # Must precede the first deepspeed import: the accelerator is chosen at import time.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(logging.WARNING)
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend=None, verbose=False)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


# --------------------------------------------------------------------------- engine


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
            "overlap_comm": False,
            "contiguous_gradients": True,
            "reduce_bucket_size": 5e8,
            "allgather_bucket_size": 5e8,
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


# --------------------------------------------------------------------------- steps


def step_rows(step: int, batch: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows of the sample file that `rank` trains on in optimizer step `step` (1-based)."""
    per_rank = batch // world_size
    start = (step - 1) * batch + rank * per_rank
    return start, start + per_rank


def lm_loss(model, rows: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a (n, seq_length+1) block of rows.

    Targets are taken from the row here rather than passing labels= to transformers, which
    would shift them a second time.
    """
    inputs, targets = rows[:, :-1], rows[:, 1:]
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


def _grad_norm(model) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    )


def train_step(
    engine,
    data: MMapIndexedDataset,
    step: int,
    *,
    batch: int,
    micro: int,
    rank: int,
    world_size: int,
    own_grad_norm: bool,
    token_map: np.ndarray | None = None,
) -> dict[str, Any]:
    """One optimizer step (all its micro-batches); returns the step's metrics.

    `token_map` (a lookup table over the vocabulary) rewrites the step's tokens before use:
    the intervention's pronoun swap, applied to the same rows in the same order."""
    t0 = time.perf_counter()
    lr = float(engine.get_lr()[0])  # the LR this update uses (scheduler advances in step())
    start, stop = step_rows(step, batch, rank, world_size)
    rows = data.get_rows(start, stop).astype(np.int64)
    if token_map is not None:
        rows = token_map[rows]
    rows = torch.from_numpy(rows).to(engine.device)
    losses = []
    grad_norm = None
    for i in range(0, rows.size(0), micro):
        loss = lm_loss(engine, rows[i : i + micro])
        engine.backward(loss)  # DeepSpeed divides by the accumulation steps
        if own_grad_norm and engine.is_gradient_accumulation_boundary():
            # Plain fp32 ZeRO-0 clips without recording the norm; grads are all-reduced here.
            grad_norm = _grad_norm(engine.module)
        engine.step()
        losses.append(loss.detach())
    mean_loss = torch.stack(losses).mean()
    if world_size > 1:
        torch.distributed.all_reduce(mean_loss)
        mean_loss /= world_size
    if grad_norm is None:
        gn = engine.get_global_grad_norm()
        grad_norm = None if gn is None else float(gn)
    scale = getattr(engine.optimizer, "cur_scale", None) if engine.fp16_enabled() else None
    return {
        "step": step,
        "loss": float(mean_loss),
        "lr": lr,
        "grad_norm": grad_norm,
        "loss_scale": None if scale is None else float(scale),
        "skipped": not engine.was_step_applied(),
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Mapping[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def add_legacy_rotary_keys(config_json: Path) -> None:
    """transformers 5 saves only rope_parameters, which 4.x silently ignores; add the keys 4.x
    (and EleutherAI's own configs) use so the checkpoint loads identically in both."""
    cfg = json.loads(config_json.read_text())
    rope = cfg.get("rope_parameters") or {}
    cfg["rotary_pct"] = rope.get("partial_rotary_factor", cfg.get("rotary_pct"))
    cfg["rotary_emb_base"] = rope.get("rope_theta", cfg.get("rotary_emb_base"))
    config_json.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def save_checkpoint(
    engine,
    out_dir: Path,
    meta: dict[str, Any],
    *,
    with_deepspeed: bool,
    rank: int,
    tokenizer_path: str | os.PathLike,
    seq_length: int,
) -> None:
    """Write one checkpoint directory atomically (collective when with_deepspeed).

    All ranks write DeepSpeed shards into one shared temporary directory (a fixed name, since
    every rank must agree on it); rank 0 adds the HF files and renames it into place last.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    if rank == 0:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)  # left behind by a killed job
        tmp.mkdir()
    _barrier()
    try:
        if with_deepspeed:
            engine.save_checkpoint(
                str(tmp / DEEPSPEED_DIR),
                tag=DEEPSPEED_TAG,
                client_state={"step": meta["step"], "rng": _rng_state()},
            )
        if rank == 0:
            engine.module.save_pretrained(tmp, safe_serialization=True)
            add_legacy_rotary_keys(tmp / "config.json")
            _save_tokenizer(tokenizer_path, tmp, seq_length)
            # every file's digest, checked before a resume, an eval or an upload uses it
            files = dir_digests(tmp, skip=(CHECKPOINT_JSON,))
            write_json(
                tmp / CHECKPOINT_JSON,
                {**meta, "has_deepspeed_state": with_deepspeed, "files": files},
            )
    except BaseException:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _barrier()
    if rank == 0:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    _barrier()


def _has_deepspeed_state(ckpt: Path, meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("has_deepspeed_state")) and (ckpt / DEEPSPEED_DIR).is_dir()


def load_hf_weights(model, ckpt: Path) -> None:
    """Copy a checkpoint's model.safetensors into `model` (strict: every tensor must match)."""
    from transformers import GPTNeoXForCausalLM

    saved = GPTNeoXForCausalLM.from_pretrained(ckpt, dtype=torch.float32).state_dict()
    mine = model.state_dict()
    # another architecture: one line naming it (torch lists every mismatched tensor)
    wrong = [k for k in saved if k in mine and saved[k].shape != mine[k].shape]
    if wrong:
        k = wrong[0]
        raise TrainingError(
            f"{ckpt}: a checkpoint of another architecture: {len(wrong)} tensors differ in "
            f"shape from the configured model's, e.g. {k} {tuple(saved[k].shape)} vs "
            f"{tuple(mine[k].shape)}"
        )
    missing, unexpected = model.load_state_dict(saved, strict=False)
    if missing or unexpected:
        raise TrainingError(
            f"{ckpt}: weights do not fit the configured model (missing {missing}, "
            f"unexpected {unexpected})"
        )


def verify_checkpoint_files(ckpt: str | os.PathLike, meta: Mapping[str, Any]) -> None:
    """The checkpoint's files are the bytes its training segment wrote (io.verify_files).

    Without a deepspeed/ directory at all the checkpoint is weights only (a Hub copy, or state
    saved by another number of ranks): its weights are checked, and check_resume decides
    whether weights alone can start the segment (step 0 only)."""
    files = meta.get("files")
    if files and not (Path(ckpt) / DEEPSPEED_DIR).is_dir():
        files = {k: v for k, v in files.items() if k.split("/")[0] != DEEPSPEED_DIR}
    verify_files(
        ckpt,
        files,
        record=Path(ckpt) / CHECKPOINT_JSON,
        # the segment rule that wrote it (when the script recorded it), else its output path
        rule=meta.get("producer") or str(ckpt),
    )


def check_resume(
    resume_from: Path,
    *,
    step: int,
    data_fp: str,
    cfg_hash: str,
    world_size: int,
    zero_stage: int,
    variant: str,
    size: str,
    engine_stage: int | None = None,
) -> dict[str, Any]:
    """Refuse to resume from a checkpoint made for other data, another config, or (for ZeRO
    >= 1, whose optimizer shards are per rank) another number of ranks.

    Step 0 is exempt from the DeepSpeed-state and rank-count rules: nothing but the weights
    exists before the first update, so `train_segment` can start from its HF weights instead.
    """
    meta_path = Path(resume_from) / CHECKPOINT_JSON
    if not meta_path.exists():
        raise TrainingError(f"{resume_from}: not a training checkpoint (no {CHECKPOINT_JSON})")
    meta = read_json(meta_path)
    verify_checkpoint_files(resume_from, meta)
    problems = []
    if meta.get("step") != step:
        problems.append(f"it is step {meta.get('step')}, the segment starts at step {step}")
    if step != 0 and not _has_deepspeed_state(Path(resume_from), meta):
        problems.append(f"it has no {DEEPSPEED_DIR}/ state (only a segment's last step has)")
    if meta.get("data_fingerprint") != data_fp:
        problems.append(
            f"it was trained on data {meta.get('data_fingerprint')}, the samples are {data_fp}"
        )
    if meta.get("config_hash") != cfg_hash:
        problems.append(
            f"its model/training config hash {meta.get('config_hash')} differs from {cfg_hash}"
        )
    if (meta.get("variant"), meta.get("size")) != (variant, size):
        problems.append(f"it is {meta.get('variant')}/{meta.get('size')}, not {variant}/{size}")
    if step != 0 and engine_stage is not None and meta.get("zero_stage") != engine_stage:
        problems.append(
            f"its DeepSpeed state is ZeRO-{meta.get('zero_stage')}, this job runs "
            f"ZeRO-{engine_stage}"
        )
    if step != 0 and zero_stage >= 1 and meta.get("world_size") != world_size:
        problems.append(
            f"its ZeRO state has {meta.get('world_size')} rank shards, this job has {world_size}"
        )
    if problems:
        raise TrainingError(f"cannot resume from {resume_from}: " + "; ".join(problems))
    return meta


# --------------------------------------------------------------------------- segment


def _progress_bar(total: int, desc: str, *, enabled: bool):
    """A tqdm bar on an interactive terminal (a job's log gets the per-step lines instead)."""
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


def _stop_requested(caught: Mapping[str, int | None], world_size: int) -> bool:
    """Whether any rank got a preemption signal (all ranks must stop at the same step)."""
    stop = caught.get("signum") is not None
    if world_size > 1:
        nccl = torch.distributed.get_backend() == "nccl"
        flag = torch.tensor([int(stop)], device="cuda" if nccl else "cpu")
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        stop = bool(flag.item())
    return stop


def train_segment(
    config: SuiteConfig,
    *,
    size: str,
    variant: str,
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    segment: Segment,
    out_dirs: Mapping[int, Path],
    resume_from: Path | None,
    log: Callable[[str], Any] = print,
    metrics_path: str | os.PathLike | None = None,
    token_map: np.ndarray | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run one segment; returns the per-step metrics (empty for the init segment).

    On SIGTERM/SIGUSR1 the segment saves its state after the step in flight and raises
    `Preempted`; run again, it continues from that state (bit-exact). `token_map` rewrites the
    tokens of every step (see train_step) and `extra_meta` is recorded in every checkpoint
    (the intervention's)."""
    with launcher_env(), _preemption_signals() as caught:
        return _train_segment(
            config,
            size=size,
            variant=variant,
            samples_prefix=samples_prefix,
            tokenizer_path=tokenizer_path,
            segment=segment,
            out_dirs=out_dirs,
            resume_from=resume_from,
            log=log,
            metrics_path=metrics_path,
            caught=caught,
            token_map=token_map,
            extra_meta=extra_meta,
        )


def _train_segment(
    config: SuiteConfig,
    *,
    size: str,
    variant: str,
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    segment: Segment,
    out_dirs: Mapping[int, Path],
    resume_from: Path | None,
    log: Callable[[str], Any],
    metrics_path: str | os.PathLike | None,
    caught: Mapping[str, int | None],
    token_map: np.ndarray | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    from workflow.train.model import build_model
    from workflow.train.step_log import (
        StepLog,
        device_peak_tflops,
        flops_per_token,
        matmul_params,
    )

    if size not in config.models:
        raise TrainingError(f"models.{size}: no such model in the config")
    spec, training = config.models[size], config.training
    missing = [s for s in segment.steps if s not in out_dirs]
    if missing:
        raise TrainingError(f"segment {segment}: no output directory for steps {missing}")
    if any(not (segment.start < s <= segment.end) for s in segment.steps):
        raise TrainingError(f"segment {segment}: checkpoint steps must lie in (start, end]")
    init_only = segment.start < 0
    if init_only and segment.end != 0:
        raise TrainingError(f"segment {segment}: start -1 is the initialisation, it must end at 0")
    if not init_only and resume_from is None:
        raise TrainingError(f"segment {segment}: needs the step-{segment.start} checkpoint")

    check_samples(samples_prefix)
    data = MMapIndexedDataset(samples_prefix)
    b, seq = training.global_batch_size, training.seq_length
    if len(data) < segment.end * b:
        raise TrainingError(
            f"{samples_prefix}: {len(data)} samples, step {segment.end} needs {segment.end * b}"
        )
    if len(data) and int(data.sizes[0]) != seq + 1:
        raise TrainingError(
            f"{samples_prefix}: rows have {int(data.sizes[0])} tokens, training.seq_length "
            f"{seq} needs {seq + 1}"
        )

    rank, world = setup_distributed()
    torch.set_num_threads(training.threads)
    if torch.cuda.is_available():
        # Bit-exact resume needs deterministic CUDA kernels (CPU kernels already are); warn_only
        # because not every CUDA kernel has a deterministic variant.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # ...but not its NaN-filling of torch.empty: DeepSpeed's 5e8-element ZeRO buckets
        # would be rewritten every step (measured: 0.8 s/step instead of 0.004 on a tiny model).
        torch.utils.deterministic.fill_uninitialized_memory = False
    say = log if rank == 0 else (lambda *_: None)

    data_fp = data_fingerprint(samples_prefix)
    cfg_hash = config_hash(spec, training)
    resume_meta: dict[str, Any] = {}

    def resumable(ckpt: Path, step: int) -> dict[str, Any]:
        return check_resume(
            ckpt,
            step=step,
            data_fp=data_fp,
            cfg_hash=cfg_hash,
            world_size=world,
            zero_stage=training.zero_stage,
            variant=variant,
            size=size,
            engine_stage=effective_zero_stage(training, spec, world),
        )

    start = segment.start  # the last step already trained
    pdir = preempt_dir(out_dirs, segment)
    if not init_only and (pdir / CHECKPOINT_JSON).exists():
        pstep = read_json(pdir / CHECKPOINT_JSON).get("step")
        try:
            if not (isinstance(pstep, int) and segment.start < pstep < segment.end):
                raise TrainingError(f"its step {pstep} is not inside segment {segment}")
            lost = [
                s for s in segment.steps if s <= pstep and not (pdir / "done" / f"step{s}").is_dir()
            ]
            if lost:
                raise TrainingError(f"the checkpoints of steps {lost} it had made are missing")
            resumable(pdir, pstep)
        except (TrainingError, ArtifactError) as e:
            say(f"ignoring the preempted state {pdir}: {e}")
        else:
            say(f"resuming the preempted segment from step {pstep} ({pdir})")
            resume_from, start = pdir, pstep
            if rank == 0:  # the checkpoints made before the preemption go back into place
                for s in (s for s in segment.steps if s <= pstep):
                    if Path(out_dirs[s]).exists():
                        shutil.rmtree(out_dirs[s])
                    os.replace(pdir / "done" / f"step{s}", out_dirs[s])
            _barrier()
    if not init_only:
        resume_meta = resumable(Path(resume_from), start)
    vocab = tokenizer_vocab_size(tokenizer_path)
    check_vocab(data, samples_prefix, tokenizer_path, vocab, first_step=max(start, 0) + 1, batch=b)
    # From step 0 without a usable DeepSpeed state (saved by another number of ranks), the HF
    # weights are the whole state: Adam moments are empty and the LR schedule is at 0.
    from_weights = start == 0 and (
        resume_meta.get("world_size") != world
        or not _has_deepspeed_state(Path(resume_from), resume_meta)
    )
    # On resume the weights come from the checkpoint: skip the (for big models, slow) NeoX init.
    model = build_model(spec, training, vocab, training.seed, init=init_only)
    if from_weights:
        load_hf_weights(model, Path(resume_from))
    engine, micro, gas = make_engine(model, spec, training, world)
    if not init_only and not from_weights:
        path, client = engine.load_checkpoint(
            str(Path(resume_from) / DEEPSPEED_DIR), tag=DEEPSPEED_TAG
        )
        if path is None or client.get("step") != start:
            raise TrainingError(f"{resume_from}/{DEEPSPEED_DIR}: DeepSpeed state did not load")
        _set_rng_state(client.get("rng"))

    base_meta = {
        "variant": variant,
        "size": size,
        "data_fingerprint": data_fp,
        "config_hash": cfg_hash,
        "code_version": workflow.__version__,
        "seed": training.seed,
        "precision": spec.precision,
        "zero_stage": effective_zero_stage(training, spec, world),
        "zero_stage_configured": training.zero_stage,
        "world_size": world,
        "micro_batch_size": micro,
        "gradient_accumulation_steps": gas,
        **(extra_meta or {}),
    }

    def meta_for(step: int, metrics: dict | None) -> dict:
        return {
            **base_meta,
            "step": step,
            "samples_seen": step * b,
            "tokens_seen": step * b * seq,
            "metrics": metrics,
        }

    def save(step: int, metrics: dict | None, with_deepspeed: bool) -> None:
        save_checkpoint(
            engine,
            Path(out_dirs[step]),
            meta_for(step, metrics),
            with_deepspeed=with_deepspeed,
            rank=rank,
            tokenizer_path=tokenizer_path,
            seq_length=seq,
        )
        say(f"saved step {step} -> {out_dirs[step]}")

    if init_only:
        say(f"{variant}/{size}: initialised ({spec.init}, seed {training.seed})")
        save(0, None, with_deepspeed=True)
        return []

    def _one_step(step: int) -> dict[str, Any]:
        m = train_step(
            engine,
            data,
            step,
            batch=b,
            micro=micro,
            rank=rank,
            world_size=world,
            own_grad_norm=effective_zero_stage(training, spec, world) == 0
            and spec.precision == "fp32",
            token_map=token_map,
        )
        gn = "n/a" if m["grad_norm"] is None else f"{m['grad_norm']:.6f}"
        say(
            f"step {step} loss {m['loss']:.6f} lr {m['lr']:.6e} grad_norm {gn}"
            f"{' (skipped: fp16 overflow)' if m['skipped'] else ''} {m['seconds']:.3f}s"
        )
        if step in segment.steps:
            metrics = {k: m[k] for k in ("loss", "lr", "grad_norm", "skipped")}
            save(step, metrics, with_deepspeed=step == segment.end)
        return m

    say(
        f"{variant}/{size}: steps {start + 1}..{segment.end} on {world} rank(s), "
        f"micro-batch {micro} x {gas} accumulation, {spec.precision}, "
        f"ZeRO {effective_zero_stage(training, spec, world)}"
    )
    history = []
    n_matmul = matmul_params(engine.module)
    per_token = flops_per_token(n_matmul, spec.num_layers, spec.hidden_size, seq)
    steplog = StepLog(
        metrics_path if rank == 0 else None,
        flops_per_step_per_device=per_token * b * seq / world,
        peak_tflops=device_peak_tflops(training.peak_tflops, spec.precision),
        resume_step=start if start != segment.start else None,
        tensorboard_dir=(
            Path(out_dirs[segment.end]).parent / "tensorboard"
            if training.tensorboard and rank == 0
            else None
        ),
        wandb_project=training.wandb_project if rank == 0 else None,
        run_name=f"{variant}-{size}",
    )
    complete = False
    bar = _progress_bar(segment.end - start, f"{variant}/{size}", enabled=rank == 0)
    try:
        for step in range(start + 1, segment.end + 1):
            m = _one_step(step)
            history.append(m)
            row = steplog.row(m, b * seq, world)
            steplog.write(row)
            if bar is not None:
                bar.set_postfix(loss=f"{m['loss']:.4f}", tok_s=f"{row['tokens_per_s'] or 0:,.0f}")
                bar.update()
            if step < segment.end and _stop_requested(caught, world):
                save_checkpoint(
                    engine,
                    pdir,
                    meta_for(step, {k: m[k] for k in ("loss", "lr", "grad_norm", "skipped")}),
                    with_deepspeed=True,
                    rank=rank,
                    tokenizer_path=tokenizer_path,
                    seq_length=seq,
                )
                if rank == 0:  # a failed job's outputs are deleted: keep these with the state
                    (pdir / "done").mkdir()
                    for s in (s for s in segment.steps if s <= step):
                        os.replace(out_dirs[s], pdir / "done" / f"step{s}")
                _barrier()
                raise Preempted(
                    f"{variant}/{size}: stopped by a signal after step {step}; its state is in "
                    f"{pdir}: run the segment again to continue from it"
                )
        complete = True
    finally:
        steplog.close(complete)
        if bar is not None:
            bar.close()
    if rank == 0 and pdir.exists():
        shutil.rmtree(pdir)
    return history


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Entry point for launchers (torchrun, srun): every rank runs this."""
    from workflow.studies.intervention.arms import token_map as intervention_token_map

    p = argparse.ArgumentParser(
        prog="python -m workflow.train.segment", description=__doc__.split("\n")[0]
    )
    p.add_argument("--config-json", required=True, help="the validated suite config as JSON")
    p.add_argument("--size", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--samples", required=True, help="sample file prefix (without .bin/.idx)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    # torchrun's argparse prefix-matches options even after the script name, and `--start` is
    # ambiguous with its --start-method: launchers must pass --start-step (--start is kept for
    # direct calls).
    p.add_argument("--start-step", "--start", dest="start", type=int, required=True)
    p.add_argument("--end-step", "--end", dest="end", type=int, required=True)
    p.add_argument("--steps", required=True, help="comma-separated checkpoint steps")
    p.add_argument("--out-template", required=True, help="checkpoint dir with {step}")
    p.add_argument("--resume-from", default=None)
    p.add_argument("--metrics", default=None, help="per-step CSV log (rank 0 writes it)")
    p.add_argument("--swap-map", default=None, help="an intervention's pronoun map (JSON)")
    p.add_argument("--extra-meta", default=None, help="JSON recorded in every checkpoint")
    a = p.parse_args(argv)
    with open(a.config_json) as f:
        suite = SuiteConfig.from_dict(json.load(f))
    steps = tuple(int(s) for s in a.steps.split(",") if s.strip())
    segment = Segment(a.start, a.end, steps)
    out_dirs = {s: Path(a.out_template.format(step=s)) for s in steps}
    return train_segment(
        suite,
        size=a.size,
        variant=a.variant,
        samples_prefix=a.samples,
        tokenizer_path=a.tokenizer,
        segment=segment,
        out_dirs=out_dirs,
        resume_from=Path(a.resume_from) if a.resume_from else None,
        log=lambda msg: print(msg, flush=True),
        metrics_path=a.metrics,
        token_map=(
            None
            if a.swap_map is None
            else intervention_token_map(read_json(a.swap_map), tokenizer_vocab_size(a.tokenizer))
        ),
        extra_meta=None if a.extra_meta is None else json.loads(a.extra_meta),
    )


if __name__ == "__main__":
    try:
        main()
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT)
