"""Train one segment of one Pythia model with DeepSpeed (DESIGN.md "Training as a chain of file
targets").

Segment (a, b] loads checkpoint a (model + DeepSpeed optimizer/scheduler state), runs optimizer
steps a+1 .. b and writes the scheduled checkpoints inside (a, b]. The segment with start -1 only
builds and saves the initialisation (step 0).

Conventions (reference/pythia.md §2, §3.4):
* optimizer step s (1-based) consumes rows [(s-1)·B, s·B) of the pre-shuffled sample file, so a
  step-N checkpoint has trained on rows [0, N·B); each row is seq_length+1 tokens, inputs =
  row[:-1], targets = row[1:];
* ranks = data-parallel x tensor-parallel (`models.X.model_parallel`; engine.py): rank r is
  data-parallel rank r // tp and tensor-parallel rank r % tp. Data-parallel rank d takes the
  d-th contiguous slice of the global batch (every rank of its tensor-parallel group the same
  rows), then splits it into micro-batches (DeepSpeed gradient accumulation);
* the LR of step s is NeoX's AnnealingLR at num_iters = s-1 (workflow/train/lr_schedule.py).

Resume is bit-exact: the data position is a function of the step, dropout is 0, and DeepSpeed
restores weights, Adam moments, the LR scheduler and the step counter; the torch RNG state is
saved too so that a future config with dropout stays exact.

The parts: data.py (samples, tokenizer, token maps), distributed.py (process group),
engine.py (DeepSpeed settings), step.py (one optimizer step), checkpoint.py (save, check,
restore), preempt.py (signals, saved state), step_log.py (per-step log). Run in-process (one
device) through `train_segment`, or under torchrun/srun with `main()`; dispatch.py picks.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import workflow
from workflow.core.config import ModelSpec, Segment, SuiteConfig, TrainingSpec
from workflow.core.identity import config_hash
from workflow.train.checkpoint import (
    CheckpointWriter,
    ResumeKey,
    has_deepspeed_state,
    load_deepspeed_state,
    load_hf_weights,
)
from workflow.train.data import (
    check_vocab,
    data_fingerprint,
    open_samples,
    read_token_map,
    tokenizer_vocab_size,
)
from workflow.train.distributed import (
    configure_torch,
    launcher_env,
    run_rank,
    setup_distributed,
    tp_placement,
)
from workflow.train.engine import effective_zero_stage, make_engine, parallel_groups, tp_layout
from workflow.train.errors import TrainingError
from workflow.train.model import build_model
from workflow.train.preempt import (
    clear_preempted,
    preempt_dir,
    preemption_signals,
    resume_preempted,
    save_preempted,
    stop_requested,
)
from workflow.train.step import train_step
from workflow.train.step_log import (
    Progress,
    StepLog,
    device_peak_tflops,
    flops_per_token,
    matmul_params,
    progress_bar,
)

METRICS = ("loss", "lr", "grad_norm", "skipped")  # a step's metrics kept in its checkpoint


@dataclass(frozen=True)
class Job:
    """Who trains what: one model of one variant, and this rank's place among `world` ranks."""

    variant: str
    size: str
    spec: ModelSpec
    training: TrainingSpec
    rank: int
    world: int

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.size}"

    @property
    def tp(self) -> int:
        """Tensor-parallel size: `model_parallel` consecutive ranks hold one model replica."""
        return tp_layout(self.spec, self.world)[1]

    @property
    def dp(self) -> int:
        """Data-parallel size: the number of model replicas."""
        return self.world // self.tp

    @property
    def dp_rank(self) -> int:
        return self.rank // self.tp

    @property
    def stage(self) -> int:
        """The ZeRO stage the engine runs (engine.effective_zero_stage)."""
        return effective_zero_stage(self.training, self.spec, self.world)

    @property
    def own_grad_norm(self) -> bool:
        """Plain fp32 ZeRO-0 clips without recording the norm: train_step computes it."""
        return self.stage == 0 and self.spec.precision == "fp32"

    def resume_key(self, data_fp: str) -> ResumeKey:
        return ResumeKey(
            data_fp=data_fp,
            cfg_hash=config_hash(self.spec, self.training),
            world_size=self.world,
            zero_stage=self.training.zero_stage,
            variant=self.variant,
            size=self.size,
            engine_stage=self.stage,
            tensor_parallel=self.tp,
        )


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
    token_map: str | os.PathLike | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run one segment; returns the per-step metrics (empty for an initialisation alone).

    On SIGTERM/SIGUSR1 the segment saves its state after the step in flight and raises
    `Preempted`; run again, it continues from that state (bit-exact). `token_map` is a token-map
    file (data.read_token_map) that rewrites the tokens of every step, and `extra_meta` is
    recorded in every checkpoint (the intervention's swap map and arm)."""
    spec, training = check_segment(config, size, segment, out_dirs, resume_from)
    spec = spec.for_variant(variant)  # e.g. pythia-1b bf16, pythia-1b-deduped fp16
    b, seq = training.global_batch_size, training.seq_length
    with launcher_env(), preemption_signals() as caught:
        # the inputs
        data = open_samples(samples_prefix, training, segment.end)
        rank, world = setup_distributed()
        configure_torch(training.threads)
        job = Job(variant, size, spec, training, rank, world)
        say = log if rank == 0 else _quiet
        if job.tp > 1:
            say(placement_line(job))
        key = job.resume_key(data_fingerprint(samples_prefix))
        resume_from, start, record = resume_point(job, key, segment, out_dirs, resume_from, say)
        vocab = tokenizer_vocab_size(tokenizer_path)
        first = max(start, 0) + 1
        check_vocab(data, samples_prefix, tokenizer_path, vocab, first_step=first, batch=b)
        lut = None if token_map is None else read_token_map(token_map, vocab)
        # the engine, and the checkpoints it writes
        engine, micro, gas = restore_engine(job, vocab, resume_from, start, record)
        meta = run_meta(job, key, micro=micro, gas=gas, extra=extra_meta)
        dp_group, tp_group = parallel_groups(job.tp)
        ckpt = CheckpointWriter(engine, meta, b, seq, rank, tokenizer_path, tp_group, job.dp_rank)
        if start < 0:  # the first segment: NeoX's initialisation is step 0
            say(f"{job.name}: initialised ({spec.init}, seed {training.seed})")
            ckpt.save(out_dirs[0], 0, None, with_deepspeed=True)
            say(f"saved step 0 -> {out_dirs[0]}")
        if segment.end == 0:
            return []
        say(start_line(job, max(start, 0), segment.end, micro, gas))
        # the loop: batch -> forward/backward -> step, log, checkpoint; stop on a signal
        layout = dict(
            batch=b,
            micro=micro,
            rank=job.dp_rank,
            world_size=job.dp,
            chunk=training.loss_chunk_tokens,
            dp_group=dp_group,
            tp_group=tp_group,
        )
        history = []
        with open_progress(job, engine, segment, out_dirs, start, metrics_path) as progress:
            for step in range(max(start, 0) + 1, segment.end + 1):
                m = train_step(
                    engine, data, step, own_grad_norm=job.own_grad_norm, token_lut=lut, **layout
                )
                say(step_line(m))
                if step in segment.steps:
                    keep = step == segment.end or step in segment.keep_state
                    ckpt.save(out_dirs[step], step, _metrics(m), with_deepspeed=keep)
                    say(f"saved step {step} -> {out_dirs[step]}")
                history.append(m)
                progress.update(m)
                if step < segment.end and stop_requested(caught, world):
                    raise save_preempted(ckpt, segment, out_dirs, step, _metrics(m), name=job.name)
        clear_preempted(segment, out_dirs, rank=rank)
        return history


# --------------------------------------------------------------------------- the parts


def resume_point(
    job: Job,
    key: ResumeKey,
    segment: Segment,
    out_dirs: Mapping[int, Path],
    resume_from: Path | None,
    say: Callable[[str], Any],
) -> tuple[Path | None, int, dict[str, Any]]:
    """(checkpoint, step, its training record checked against this run) the segment continues
    from: its start, or the state a preempted run of it left; at start -1 (the initialisation)
    no checkpoint."""
    start = segment.start
    preempted = resume_preempted(
        segment, out_dirs, key, rank=job.rank, world_size=job.world, say=say
    )
    if preempted is not None:
        resume_from, start = preempt_dir(out_dirs, segment), preempted
    return resume_from, start, ({} if start < 0 else key.check(Path(resume_from), start))


def placement_line(job: Job) -> str:
    """Where the tensor-parallel groups run (each must stay inside one node: tp_placement)."""
    placement = tp_placement(job.tp)
    return (
        f"{job.name}: {job.dp} data-parallel x {job.tp} tensor-parallel ranks; groups "
        + " ".join(f"{ranks[0]}-{ranks[-1]}@{node}" for ranks, node in placement)
    )


def start_line(job: Job, start: int, end: int, micro: int, gas: int) -> str:
    return (
        f"{job.name}: steps {start + 1}..{end} on {job.world} rank(s) ({job.dp} "
        f"data-parallel x {job.tp} tensor-parallel), micro-batch {micro} x {gas} "
        f"accumulation, {job.spec.precision}, ZeRO {job.stage}"
    )


def check_segment(
    config: SuiteConfig,
    size: str,
    segment: Segment,
    out_dirs: Mapping[int, Path],
    resume_from: Path | None,
) -> tuple[ModelSpec, TrainingSpec]:
    """The model and training specs, once the segment is known to be one this job can run."""
    if size not in config.models:
        raise TrainingError(f"models.{size}: no such model in the config")
    missing = [s for s in segment.steps if s not in out_dirs]
    if missing:
        raise TrainingError(f"segment {segment}: no output directory for steps {missing}")
    if any(not (segment.start < s <= segment.end) for s in segment.steps):
        raise TrainingError(f"segment {segment}: checkpoint steps must lie in (start, end]")
    if not set(segment.keep_state) <= set(segment.steps):
        raise TrainingError(f"segment {segment}: keep_state steps must be checkpoint steps")
    if segment.start < 0 and 0 not in segment.steps:
        raise TrainingError(f"segment {segment}: start -1 initialises the model, it saves step 0")
    if segment.start >= 0 and resume_from is None:
        raise TrainingError(f"segment {segment}: needs the step-{segment.start} checkpoint")
    return config.models[size], config.training


def restore_engine(
    job: Job, vocab: int, resume_from: Path | None, start: int, meta: Mapping[str, Any]
):
    """(engine, micro_batch, accumulation_steps) holding the state after step `start`: NeoX's
    initialisation at start -1 (a suite's first segment), else the checkpoint's DeepSpeed
    state, or its HF weights alone at step 0 without a usable DeepSpeed state (saved by another
    number of ranks or tensor-parallel size: Adam moments are empty and the LR schedule is at 0
    there anyway)."""
    spec, training = job.spec, job.training
    init_only = start < 0
    from_weights = start == 0 and (
        meta.get("world_size") != job.world
        or meta.get("tensor_parallel", 1) != job.tp
        or not has_deepspeed_state(Path(resume_from), meta)
    )
    # On resume the weights come from the checkpoint: skip the (for big models, slow) NeoX init.
    model = build_model(spec, training, vocab, training.seed, init=init_only)
    if training.activation_checkpointing:
        # Pythia's checkpoint-activations, one layer per checkpoint; non-reentrant, so the
        # recomputed forward sees the same RNG state and gives the same values
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if from_weights:
        load_hf_weights(model, Path(resume_from))
    engine, micro, gas = make_engine(model, spec, training, job.world)
    if not init_only and not from_weights:
        load_deepspeed_state(engine, Path(resume_from), start)
    return engine, micro, gas


def run_meta(
    job: Job, key: ResumeKey, *, micro: int, gas: int, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The training record every checkpoint of this segment shares (checkpoint.CheckpointWriter
    adds the step's own)."""
    return {
        "variant": job.variant,
        "size": job.size,
        "data_fingerprint": key.data_fp,
        "config_hash": key.cfg_hash,
        "code_version": workflow.__version__,
        "seed": job.training.seed,
        "precision": job.spec.precision,
        "zero_stage": job.stage,
        "zero_stage_configured": job.training.zero_stage,
        "world_size": job.world,
        "data_parallel": job.dp,
        "tensor_parallel": job.tp,
        "micro_batch_size": micro,
        "gradient_accumulation_steps": gas,
        **(extra or {}),
    }


def step_line(m: Mapping[str, Any]) -> str:
    """A step's line in the job log."""
    gn = "n/a" if m["grad_norm"] is None else f"{m['grad_norm']:.6f}"
    return (
        f"step {m['step']} loss {m['loss']:.6f} lr {m['lr']:.6e} grad_norm {gn}"
        f"{' (skipped: fp16 overflow)' if m['skipped'] else ''} {m['seconds']:.3f}s"
    )


def _metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in METRICS}


def _quiet(*_: Any) -> None:
    """The log of ranks other than 0."""


def open_progress(
    job: Job,
    engine,
    segment: Segment,
    out_dirs: Mapping[int, Path],
    start: int,
    metrics_path: str | os.PathLike | None,
) -> Progress:
    """The step log of a segment resumed after step `start` (rank 0 writes it, beside the
    model's checkpoints go its TensorBoard logs when asked for) and its progress bar."""
    spec, training, rank = job.spec, job.training, job.rank
    b, seq = training.global_batch_size, training.seq_length
    n_matmul = matmul_params(engine.module)
    per_token = flops_per_token(n_matmul, spec.num_layers, spec.hidden_size, seq)
    run_dir = Path(out_dirs[segment.end]).parent
    steplog = StepLog(
        metrics_path if rank == 0 else None,
        flops_per_step_per_device=per_token * b * seq / job.world,
        peak_tflops=device_peak_tflops(training.peak_tflops, spec.precision),
        # a preempted run's partial log is continued from the step it resumes at
        resume_step=start if start != segment.start else None,
        tensorboard_dir=run_dir / "tensorboard" if training.tensorboard and rank == 0 else None,
        wandb_project=training.wandb_project if rank == 0 else None,
        run_name=f"{job.variant}-{job.size}",
    )
    bar = progress_bar(segment.end - max(start, 0), job.name, enabled=rank == 0)
    return Progress(steplog, bar, b * seq, job.world)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Entry point for launchers (torchrun, srun): every rank runs this."""
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
    p.add_argument(
        "--keep-state", default="", help="comma-separated steps saved with the DeepSpeed state"
    )
    p.add_argument("--out-template", required=True, help="checkpoint dir with {step}")
    p.add_argument("--resume-from", default=None)
    p.add_argument("--metrics", default=None, help="per-step CSV log (rank 0 writes it)")
    p.add_argument("--token-map", default=None, help="token id -> token id map (JSON)")
    p.add_argument("--extra-meta", default=None, help="JSON recorded in every checkpoint")
    a = p.parse_args(argv)
    with open(a.config_json) as f:
        suite = SuiteConfig.from_dict(json.load(f))
    steps = _ints(a.steps)
    return train_segment(
        suite,
        size=a.size,
        variant=a.variant,
        samples_prefix=a.samples,
        tokenizer_path=a.tokenizer,
        segment=Segment(a.start, a.end, steps, _ints(a.keep_state)),
        out_dirs=out_dirs_of(a.out_template, steps),
        resume_from=Path(a.resume_from) if a.resume_from else None,
        log=lambda msg: print(msg, flush=True),
        metrics_path=a.metrics,
        token_map=a.token_map,
        extra_meta=None if a.extra_meta is None else json.loads(a.extra_meta),
    )


def _ints(csv: str) -> tuple[int, ...]:
    return tuple(int(s) for s in csv.split(",") if s.strip())


def out_dirs_of(out_template: str, steps) -> dict[int, Path]:
    """The checkpoint directory of each step, from a template with "{step}"."""
    return {s: Path(out_template.format(step=s)) for s in steps}


if __name__ == "__main__":
    run_rank(main)
