"""Preemption: a signal (Slurm's time limit, or --signal=USR1@T) lets the step in flight finish,
then the segment saves its state beside its checkpoints and stops with `Preempted`; the retried
job finds that state and continues from it (bit-exact, as any resume)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workflow.core.checkpoint import CHECKPOINT_JSON
from workflow.core.config import Segment
from workflow.core.io import ArtifactError, read_json
from workflow.train.checkpoint import CheckpointWriter, ResumeKey
from workflow.train.distributed import any_rank, barrier
from workflow.train.errors import Preempted, TrainingError

PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1")  # Slurm: SIGTERM at the time limit, or --signal=USR1@T


def preempt_dir(out_dirs: Mapping[int, Path], segment: Segment) -> Path:
    """Where a preempted segment leaves its state: beside its checkpoints, hidden, and not a
    Snakemake output (a failed job's outputs are deleted; this must survive until the retry)."""
    last = Path(out_dirs[segment.end])
    return last.parent / f".preempt-{segment.start}-{segment.end}"


@contextlib.contextmanager
def preemption_signals():
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


def stop_requested(caught: Mapping[str, int | None], world_size: int) -> bool:
    """Whether any rank got a preemption signal (all ranks must stop at the same step)."""
    return any_rank(caught.get("signum") is not None, world_size)


def resume_preempted(
    segment: Segment,
    out_dirs: Mapping[int, Path],
    key: ResumeKey,
    *,
    rank: int,
    world_size: int,
    say: Callable[[str], Any],
) -> int | None:
    """The step a usable preempted state of this segment holds, with the checkpoints it had made
    moved back into place; None when there is none (an unusable one is reported and ignored;
    an initialisation alone has none). Every rank checks the state before rank 0 moves anything
    and all decide alike: a rank that checked after the move saw the checkpoints missing and
    started over while the others resumed, and the ranks then waited for each other forever."""
    pdir = preempt_dir(out_dirs, segment)
    if segment.end == 0 or not (pdir / CHECKPOINT_JSON).exists():
        return None
    pstep = read_json(pdir / CHECKPOINT_JSON).get("step")
    problem = None
    try:
        if not (isinstance(pstep, int) and segment.start < pstep < segment.end):
            raise TrainingError(f"its step {pstep} is not inside segment {segment}")
        made = [s for s in segment.steps if s <= pstep]
        lost = [s for s in made if not (pdir / "done" / f"step{s}").is_dir()]
        if lost:
            raise TrainingError(f"the checkpoints of steps {lost} it had made are missing")
        key.check(pdir, pstep)
    except (TrainingError, ArtifactError) as e:
        problem = e
    if any_rank(problem is not None, world_size):  # collective: before any rank moves a file
        say(f"ignoring the preempted state {pdir}: {problem or 'another rank cannot use it'}")
        return None
    say(f"resuming the preempted segment from step {pstep} ({pdir})")
    if rank == 0:  # the checkpoints made before the preemption go back into place
        for s in made:
            if Path(out_dirs[s]).exists():
                shutil.rmtree(out_dirs[s])
            os.replace(pdir / "done" / f"step{s}", out_dirs[s])
    barrier()
    return pstep


def save_preempted(
    ckpt: CheckpointWriter,
    segment: Segment,
    out_dirs: Mapping[int, Path],
    step: int,
    metrics: Mapping[str, Any],
    *,
    name: str,
) -> Preempted:
    """Save the state after `step` and keep the checkpoints made so far with it; returns the
    `Preempted` to raise."""
    pdir = preempt_dir(out_dirs, segment)
    ckpt.save(pdir, step, metrics, with_deepspeed=True)
    if ckpt.rank == 0:  # a failed job's outputs are deleted: keep these with the state
        (pdir / "done").mkdir()
        for s in (s for s in segment.steps if s <= step):
            os.replace(out_dirs[s], pdir / "done" / f"step{s}")
    barrier()
    return Preempted(
        f"{name}: stopped by a signal after step {step}; its state is in {pdir}: run the "
        "segment again to continue from it"
    )


def clear_preempted(segment: Segment, out_dirs: Mapping[int, Path], *, rank: int) -> None:
    """Remove the preempted state once the segment is complete."""
    pdir = preempt_dir(out_dirs, segment)
    if rank == 0 and pdir.exists():
        shutil.rmtree(pdir)
