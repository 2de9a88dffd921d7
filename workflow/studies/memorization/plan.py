"""What the memorization study scores (rules/memorization.smk): the `memorization:` config
section resolved against the suite (``MemorizationPlan``), the rows and (k, l) probe of one
checkpoint (``MemorizationSpec``), and the checks that refuse a probe or step before any work
(the section itself is checked with the config: workflow.core.semantics).

A step-N checkpoint has trained on rows [0, N*B) of the pre-shuffled sample file (B = global
batch size). Those rows are scored in shards, one job each, of at most ``samples_per_job`` rows
and, on a GPU suite, at most the rows a model scores in ``hours_per_job`` (the plan's time model:
``workflow.plan.resources.memorization_rows_per_job``, so a 12B shard is ~170x smaller than a 70M
one); with ``max_samples`` an even stride over them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PAPER_K = PAPER_L = 32


class MemorizationError(ValueError):
    """A memorization job that cannot run as asked; the message names what and where."""


@dataclass(frozen=True)
class MemorizationSpec:
    """What one (variant, size, step) evaluates: which rows, and the (k, l) probe."""

    step: int
    global_batch_size: int
    prompt_tokens: int = PAPER_K  # k
    continuation_tokens: int = PAPER_L  # l
    max_samples: int | None = None  # None = every sample seen; else an even stride over them
    samples_per_job: int = 1 << 23

    @property
    def rows_seen(self) -> int:
        """Rows [0, step*B) of the sample file: what a step-N checkpoint has trained on."""
        return self.step * self.global_batch_size

    @property
    def stride(self) -> int:
        """Every stride-th seen row is scored (1 = all); even spacing keeps blocks of
        consecutive scored samples equal slices of training time."""
        if self.max_samples is None or self.max_samples >= self.rows_seen:
            return 1
        return math.ceil(self.rows_seen / self.max_samples)

    @property
    def num_samples(self) -> int:
        return len(range(0, self.rows_seen, self.stride))

    @property
    def num_jobs(self) -> int:
        return max(1, math.ceil(self.num_samples / self.samples_per_job))

    def shard_size(self, part: int) -> int:
        """How many rows job `part` scores (as `shard_rows`, counted without building them)."""
        lo = part * self.samples_per_job
        return max(min(self.samples_per_job, self.num_samples - lo), 0)

    def shard_rows(self, part: int) -> np.ndarray:
        """The sample-file row indices scored by job `part`."""
        if not 0 <= part < self.num_jobs:
            raise MemorizationError(
                f"step {self.step}: shard {part} does not exist (there are {self.num_jobs})"
            )
        lo = part * self.samples_per_job
        return np.arange(lo, lo + self.shard_size(part), dtype=np.int64) * self.stride


@dataclass(frozen=True)
class MemorizationPlan:
    """The `memorization:` section resolved against the suite: what the rules build."""

    steps: tuple[int, ...]
    sizes: tuple[str, ...]
    variants: tuple[str, ...]
    figure_size: str | None
    schedule: tuple[int, ...]
    global_batch_size: int
    options: dict
    # rows per shard of each size (None: one shard per checkpoint); absent sizes use
    # samples_per_job
    rows_per_job: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: dict, suite, rows_per_job: Mapping[str, int | None] | None = None
    ) -> MemorizationPlan:
        mem = config["memorization"]
        sizes = tuple(s for s in suite.models if not mem["sizes"] or s in mem["sizes"])
        variants = tuple(v for v in suite.variants if not mem["variants"] or v in mem["variants"])
        largest = max(sizes, key=lambda s: suite.models[s].non_embedding_params(), default=None)
        return cls(
            steps=tuple(sorted(set(mem["steps"]))),
            sizes=sizes,
            variants=variants,
            figure_size=mem["figure_size"] or largest,
            schedule=tuple(suite.training.schedule),
            global_batch_size=suite.training.global_batch_size,
            options=dict(mem),
            rows_per_job=dict(rows_per_job or {}),
        )

    def spec(self, step: int | str, size: str | None = None) -> MemorizationSpec:
        """What the step-`step` checkpoint of `size` scores, and in how many shards (without a
        size: the rows, in shards of samples_per_job)."""
        step = int(step)
        per_job = self.rows_per_job.get(size, self.options["samples_per_job"])
        return MemorizationSpec(
            step=step,
            global_batch_size=self.global_batch_size,
            prompt_tokens=self.options["prompt_tokens"],
            continuation_tokens=self.options["continuation_tokens"],
            max_samples=self.options["max_samples"],
            samples_per_job=per_job or max(1, step * self.global_batch_size),
        )

    def scheduled(self, step: int | str, what: str) -> int:
        """`step` as an int; a step without a checkpoint (a target asked for by path) is
        refused with the schedule's last step named."""
        if int(step) not in self.schedule:
            raise MemorizationError(
                f"memorization of {what} step {step}: not a checkpoint of the schedule "
                f"(last step {max(self.schedule)})"
            )
        return int(step)


def check_probe(prompt_tokens: int, continuation_tokens: int, row_length: int, where: str) -> None:
    """k + l tokens must fit in one sample row (seq_length + 1 tokens)."""
    if prompt_tokens < 1 or continuation_tokens < 1:
        raise MemorizationError(
            f"{where}: prompt_tokens ({prompt_tokens}) and continuation_tokens "
            f"({continuation_tokens}) must be >= 1"
        )
    if prompt_tokens + continuation_tokens > row_length:
        raise MemorizationError(
            f"{where}: prompt_tokens + continuation_tokens = {prompt_tokens} + "
            f"{continuation_tokens} = {prompt_tokens + continuation_tokens} exceeds the "
            f"{row_length} tokens of a sample (seq_length + 1); lower them (the paper: 32 + 32 "
            "of 2049)"
        )


def check_step(
    spec: MemorizationSpec, schedule: Sequence[int], rows_in_file: int, samples_path: str
) -> None:
    """Refuse, before any work, a step that has no checkpoint or whose rows the file lacks."""
    if spec.step not in schedule:
        near = sorted(schedule, key=lambda s: abs(s - spec.step))[:3]
        raise MemorizationError(
            f"memorization step {spec.step} is not a checkpoint of the schedule "
            f"(nearest: {', '.join(map(str, sorted(near)))}; last: {max(schedule)})"
        )
    if spec.rows_seen > rows_in_file:
        last = rows_in_file // spec.global_batch_size
        raise MemorizationError(
            f"memorization step {spec.step} needs rows [0, {spec.rows_seen}) "
            f"({spec.step} steps x batch {spec.global_batch_size}) but {samples_path} has only "
            f"{rows_in_file} rows (data for steps <= {last}): the step is beyond the data"
        )
