"""The kinds of job the suite's job list holds (`workflow.plan.jobs.SuiteJobs`), each with its
rule name, steps and outputs: a training segment, its upload, an evaluation chunk, a
term-frequency chunk, an intervention run's arms and evaluation, a memorization shard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from workflow.core.config import InterventionRun, Segment
from workflow.core.layout import Layout
from workflow.studies.memorization.plan import MemorizationSpec


def rule_tag(size: str, variant: str = "standard") -> str:
    """A model as it appears in rule names, named as Pythia names its models (`1.4b` ->
    `1_4b`; its deduped variant -> `1_4b_deduped`, as pythia-1.4b-deduped)."""
    tag = re.sub(r"\W", "_", size)
    return tag if variant == "standard" else f"{tag}_{variant}"


def step_chunks(
    steps: Iterable[int],
    per_job: int,
    cost: Callable[[int], float] | None = None,
    budget: float | None = None,
) -> list[tuple[int, ...]]:
    """Consecutive runs of at most `per_job` steps (eval.steps_per_job): one job evaluates
    several checkpoints of one model, paying process start, imports and task loading once. With
    `cost` (a step's GPU-hours) and `budget` (eval.hours_per_job), a run also ends before the
    step that would take it over the budget (a step over it alone is a job of its own)."""
    chunks: list[tuple[int, ...]] = []
    chunk: list[int] = []
    spent = 0.0
    for step in steps:
        more = cost(step) if cost is not None else 0.0
        full = len(chunk) == per_job or (budget is not None and spent + more > budget)
        if chunk and full:
            chunks.append(tuple(chunk))
            chunk, spent = [], 0.0
        chunk.append(step)
        spent += more
    return chunks + [tuple(chunk)] if chunk else chunks


@dataclass(frozen=True)
class TrainJob:
    """One segment of one model's training (rules/train.smk): resumes from checkpoint
    `segment.start` and saves `segment.steps`; the first (start -1) initialises. One rule per
    variant, its outputs literal paths: Snakemake then finds a checkpoint's producer by its
    whole path instead of matching every training rule's `{variant}` pattern (the paper's
    dry run scanned ~7M candidate outputs that way)."""

    size: str
    variant: str
    segment: Segment
    layout: Layout = field(repr=False, compare=False)

    @property
    def rule(self) -> str:
        seg = self.segment
        tag = rule_tag(self.size, self.variant)
        return f"train_{tag}_{self.first_step}_{seg.end}" if seg.end > 0 else f"init_{tag}"

    @property
    def first_step(self) -> int:
        return max(self.segment.start, 0)

    @property
    def resume(self) -> str | None:
        """The checkpoint it resumes from; None for the initialisation."""
        start = self.segment.start
        return self.layout.checkpoint(self.variant, self.size, start) if start >= 0 else None

    def outputs(self) -> list[str]:
        return [self.layout.checkpoint(self.variant, self.size, s) for s in self.segment.steps]


class _ModelSteps:
    """A job over checkpoints `steps` of one model (`size`, `variant`) of the suite's layout."""

    size: str
    variant: str
    steps: tuple[int, ...]
    layout: Layout

    def checkpoints(self) -> list[str]:
        return [self.layout.checkpoint(self.variant, self.size, s) for s in self.steps]


@dataclass(frozen=True)
class UploadJob(_ModelSteps):
    """A training segment's scheduled checkpoints pushed to the hub (rules/hub.smk), each as its
    branch step{N}: they appear together when the segment ends; a rerun re-pushes nothing
    already there with the same bytes. One receipt for the job (a receipt per step was 2,464
    files that Snakemake matched and checked in every paper dry run). One rule per variant, as
    TrainJob."""

    size: str
    variant: str
    first: int
    last: int
    steps: tuple[int, ...]
    layout: Layout = field(repr=False, compare=False)

    @property
    def rule(self) -> str:
        return f"upload_{rule_tag(self.size, self.variant)}_{self.first}_{self.last}"

    def outputs(self) -> list[str]:
        return [self.layout.hub_receipt(self.variant, self.size, self.first, self.last)]


@dataclass(frozen=True)
class EvalJob(_ModelSteps):
    """lm-eval on checkpoints of one model of `variant` (rules/eval.smk): each checkpoint with
    each shot count whose grid holds it (`runs`: (step, shots) pairs, by step), one result JSON
    per run. A checkpoint's shot counts share a job: the paper's five-shot checkpoints are all
    zero-shot ones too, and a job per shot count was 144 more jobs, each loading its checkpoint
    again. A rule per variant with literal outputs, as the training rules: a wildcard
    `{variant}` made Snakemake test every eval rule's outputs against each eval JSON it looked
    up (the long table alone asks for 1,344 in the paper's dry run)."""

    size: str
    runs: tuple[tuple[int, int], ...]
    layout: Layout = field(repr=False, compare=False)
    variant: str = "standard"

    @property
    def steps(self) -> tuple[int, ...]:  # type: ignore[override]
        """Its checkpoints, in order."""
        return tuple(dict.fromkeys(step for step, _ in self.runs))

    @property
    def shots(self) -> tuple[int, ...]:
        """The shot count of each run (each output)."""
        return tuple(shots for _, shots in self.runs)

    @property
    def rule(self) -> str:
        return f"evaluate_{rule_tag(self.size, self.variant)}_{self.steps[0]}_{self.steps[-1]}"

    def outputs(self) -> list[str]:
        return [self.layout.eval_result(self.variant, self.size, s, k) for s, k in self.runs]

    def checkpoint_runs(self) -> list[tuple[str, int]]:
        """(checkpoint directory, shots) of each output, in the outputs' order."""
        return [(self.layout.checkpoint(self.variant, self.size, s), k) for s, k in self.runs]


@dataclass(frozen=True)
class TermFrequencyJob(_ModelSteps):
    """The arithmetic tasks over `steps` of one model of the study's variant
    (rules/term_frequency.smk), grouped as the eval jobs."""

    variant: str
    size: str
    steps: tuple[int, ...]
    layout: Layout = field(repr=False, compare=False)

    @property
    def rule(self) -> str:
        return f"term_frequency_eval_{rule_tag(self.size)}_{self.steps[0]}_{self.steps[-1]}"

    def outputs(self) -> list[str]:
        return [self.layout.term_frequency_result(self.variant, self.size, s) for s in self.steps]


@dataclass(frozen=True)
class InterventionJobs:
    """One gender-bias intervention run (rules/intervention.smk): its training arms
    (`intervention`, and `control` when the baseline is a control continuation) and one job
    evaluating both arms."""

    run: InterventionRun
    baseline: str  # intervention.baseline: "main" (the model's own steps) or "control"
    layout: Layout = field(repr=False, compare=False)

    @property
    def tag(self) -> str:
        return f"{rule_tag(self.run.size)}_{self.run.name}"

    @property
    def arms(self) -> list[str]:
        return ["intervention"] + (["control"] if self.baseline == "control" else [])

    def arm_rule(self, arm: str) -> str:
        return f"{arm}_{self.tag}"

    @property
    def eval_rule(self) -> str:
        return f"evaluate_{self.tag}"

    def checkpoint(self, arm: str, step) -> str:
        """A checkpoint of an arm ("baseline" or "intervention"): `intervention7/step{N}` beside
        the model's own steps; the baseline is the model's own checkpoint, or its `control7`
        continuation."""
        run = self.run
        if arm == "baseline" and (step == run.start or self.baseline == "main"):
            return self.layout.checkpoint(run.variant, run.size, step)
        kind = run.name if arm == "intervention" else run.name.replace("intervention", "control")
        return self.layout.continuation(run.variant, run.size, kind, step)

    def arm_checkpoint(self, arm: str, step) -> str:
        """What training arm `arm` writes: the intervention, or the baseline's control."""
        return self.checkpoint("intervention" if arm == "intervention" else "baseline", step)

    def arm_outputs(self, arm: str) -> list[str]:
        return [self.arm_checkpoint(arm, s) for s in self.run.window]

    @property
    def evals(self) -> list[tuple[str, str]]:
        """(checkpoint, eval JSON) of both arms: the baseline from the start, the intervention
        over the window (at the start both arms are the same weights)."""
        run = self.run
        return [
            (
                self.checkpoint(arm, step),
                self.layout.intervention_result(run.size, run.name, arm, step),
            )
            for arm in ("baseline", "intervention")
            for step in ([run.start] if arm == "baseline" else []) + list(run.window)
        ]


@dataclass(frozen=True)
class MemorizationShard:
    """One scoring job of the memorization study (rules/memorization.smk): part `part` of the
    samples the step-`step` checkpoint has seen."""

    variant: str
    size: str
    spec: MemorizationSpec
    part: int
    rule = "memorization_scores"

    @property
    def step(self) -> int:
        return self.spec.step
