"""Which steps exist: the checkpoint schedule, its cut into training jobs (segments), and the
windows of the gender-bias interventions that continue a model from one of its checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflow.core.validation import ConfigError


def checkpoint_schedule(
    train_iters: int, every: int, log_spaced: bool = True, extra: tuple[int, ...] = ()
) -> list[int]:
    """Steps at which checkpoints are saved.

    Pythia: [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000)), i.e. step 0,
    the powers of two below the linear interval, then every `every` steps; the last step is
    always included.
    """
    steps = {0, train_iters}  # step 0 (the initialisation) is where the first segment starts
    if log_spaced:
        p = 1
        while p < every and p <= train_iters:
            steps.add(p)
            p *= 2
    steps.update(range(every, train_iters + 1, every))
    steps.update(s for s in extra if 0 <= s <= train_iters)
    return sorted(steps)


def config_schedule(config: Mapping[str, Any]) -> list[int]:
    """The checkpoint schedule of a validated config (`training.checkpoints`)."""
    t = config["training"]
    ck = t["checkpoints"]
    return checkpoint_schedule(t["train_iters"], ck["every"], ck["log_spaced"], tuple(ck["extra"]))


@dataclass(frozen=True)
class Segment:
    """One training job: resumes from checkpoint `start` and saves `steps` (all in (start, end]);
    start -1: initialises the model (step 0, saved) and trains from there. The checkpoint at
    `end` keeps the DeepSpeed state (optimizer, LR schedule) to resume from, and so do those of
    `keep_state` (steps inside the segment a run branches off, as an intervention's start)."""

    start: int
    end: int
    steps: tuple[int, ...]
    keep_state: tuple[int, ...] = ()


def training_segments(
    schedule: list[int],
    segment_steps: int,
    boundaries: tuple[int, ...] = (),
    extra: tuple[int, ...] = (),
) -> list[Segment]:
    """Cut the schedule into jobs of about `segment_steps` steps.

    The first segment (start -1) initialises the model, saves it as step 0 and trains on: a
    job of its own for the initialisation would pay a process's start-up (~6 s of imports on
    CPU, a queue wait on a cluster) for well under a second of work. A schedule of step 0
    alone is one initialisation segment, Segment(-1, 0, (0,)). A segment ends on the first
    scheduled step at least `segment_steps` after its start (or the last), so every scheduled
    step belongs to exactly one segment. `boundaries` are steps whose checkpoint must hold
    the optimizer state (an intervention's start) and `extra` steps saved besides the schedule
    (a baseline's window steps): both are saved by the segment they fall in, without cutting
    it, which would cost a job (and on a cluster a queue wait) each.
    """
    if not schedule or schedule[0] != 0:
        raise ConfigError("checkpoint schedule must start at step 0 (the initialisation)")
    ends = sorted({s for s in schedule if s > 0})
    rest = sorted({s for s in (*schedule, *boundaries, *extra) if s > 0})
    if not rest:
        return [Segment(-1, 0, (0,))]
    last = max(rest)
    segments = []
    start, saved = -1, (0,)
    while rest:
        first = max(start, 0)
        # end on the first scheduled step at least segment_steps after start (or the last one)
        end = next((s for s in ends if s >= first + segment_steps), last)
        steps = saved + tuple(s for s in rest if s <= end)
        keep = tuple(b for b in sorted(set(boundaries)) if first < b < end)
        segments.append(Segment(start, end, steps, keep))
        rest = [s for s in rest if s > end]
        start, saved = end, ()
    return segments


# --------------------------------------------------------------------------- intervention


@dataclass(frozen=True)
class InterventionRun:
    """One gender-bias intervention (paper §3.1): `size` of `variant` continues from its step
    `start` checkpoint (weights and optimizer state) to `end` with pronouns swapped, saving
    `window` (the steps after the start, every `checkpoint_every`, and the end)."""

    size: str
    variant: str
    fraction: float
    start: int
    end: int
    window: tuple[int, ...]

    @property
    def name(self) -> str:
        """`intervention7` for 7% (the label of the run's directories and rules)."""
        return f"intervention{round(self.fraction * 100):g}"


def intervention_start(train_iters: int, fraction: float, round_to: int = 1) -> int:
    """(1 - fraction) x train_iters rounded to a multiple of `round_to` (0.07 of Pythia's
    143000 steps at 1000: 133000)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"intervention fraction {fraction} is outside (0, 1)")
    start = round((1.0 - fraction) * train_iters / round_to) * round_to
    if not 0 < start < train_iters:
        raise ConfigError(
            f"intervention fraction {fraction} of {train_iters} steps rounded to a multiple of "
            f"{round_to} starts at step {start}: outside (0, {train_iters})"
        )
    return start


def intervention_runs(config: Mapping[str, Any]) -> list[InterventionRun]:
    iv, t = config.get("intervention") or {}, config["training"]
    total = t["train_iters"]
    runs = []
    for r in iv.get("runs", []):
        start = intervention_start(total, r["fraction"], iv["round_start_to"])
        every = iv["checkpoint_every"]
        window = sorted({*range(start + every, total, every), total})
        runs.append(
            InterventionRun(r["size"], iv["variant"], r["fraction"], start, total, tuple(window))
        )
    return runs
