"""The job list of a suite: every job the DAG builds one rule or one output per (training
segments, evaluation chunks, term-frequency chunks, intervention arms and their evaluation,
memorization shards, uploads; their kinds: `workflow.plan.job_kinds`), the suite's task lists
and the final targets (`rule all`).

It is the one enumeration of the suite: rules/*.smk declare their rules over it and the compute
plan (`workflow.plan.estimate`) estimates its jobs, so the plan cannot disagree with the DAG,
and the final targets are testable without Snakemake. It lives above the stages (it needs the
case studies' shard counts and task names), not in `workflow.core`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from workflow.core import tasks
from workflow.core.config import SuiteConfig
from workflow.core.layout import Layout
from workflow.data.jobs import DataJobs
from workflow.plan.job_kinds import (
    EvalJob,
    InterventionJobs,
    MemorizationShard,
    TermFrequencyJob,
    TrainJob,
    UploadJob,
    step_chunks,
)
from workflow.plan.resources import eval_flops, gpu_hours, memorization_rows_per_job
from workflow.studies.memorization.plan import MemorizationPlan
from workflow.studies.term_frequency.tasks import task_name as term_frequency_task

EXTS = ("pdf", "png")  # every figure is written in both
INTERVENTION_FIGURES = ("crows_pairs", "winobias", "lambada")  # Figs 1, 2, 6


class SuiteJobs:
    """The job list of one validated suite."""

    def __init__(self, suite: SuiteConfig):
        self.suite = suite
        self.config: Mapping[str, Any] = suite.raw
        self.layout = Layout(str(suite.run_dir()))
        self.trained = self.config["checkpoints"]["source"] == "trained"
        self.variants = list(suite.variants)
        self.sizes = list(suite.models)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SuiteJobs:
        return cls(SuiteConfig.from_dict(config))

    # ------------------------------------------------------------------ data

    @cached_property
    def data(self) -> DataJobs:
        """The data stage's shards, band groups and resources (a corpus source)."""
        return DataJobs(self.config, self.layout)

    # ------------------------------------------------------------------ training and hub

    @cached_property
    def train(self) -> list[TrainJob]:
        """Per size and variant, its segments in order; none for published checkpoints."""
        if not self.trained:
            return []
        return [
            TrainJob(size, variant, seg, self.layout)
            for size in self.sizes
            for variant in self.variants
            for seg in self.suite.segments(size)
        ]

    @cached_property
    def uploads(self) -> list[UploadJob]:
        """Each training segment's scheduled checkpoints (not an intervention's branch point)."""
        if not self.trained:
            return []
        schedule = set(self.suite.training.schedule)
        segs = [(t, tuple(s for s in t.segment.steps if s in schedule)) for t in self.train]
        return [
            UploadJob(t.size, t.variant, t.first_step, t.segment.end, s, self.layout)
            for t, s in segs
            if s
        ]

    # ------------------------------------------------------------------ evaluation

    def chunks(
        self, size: str, steps: Iterable[int], shots: Mapping[int, list[int]] | None = None
    ) -> list[tuple[int, ...]]:
        """`steps` of `size` in jobs of at most eval.steps_per_job (and, for evals with `shots`,
        a step's shot counts, of a model trained on GPUs, at most what one GPU evaluates in
        eval.hours_per_job), never across a training segment: a segment's checkpoints appear
        together when its job ends, so a chunk spanning two would wait a whole segment for its
        later half (a published suite: one group)."""
        per_job = self.config["eval"]["steps_per_job"]
        hours = self.config["eval"].get("hours_per_job")
        spec = self.suite.models[size]
        cost = None
        if shots is not None and hours and spec.gpus:

            def cost(step: int) -> float:
                return gpu_hours(eval_flops(self.suite, spec, shots[step]), self.config["compute"])

        produced_by = {
            s: t.segment.end for t in self.train if t.size == size for s in t.segment.steps
        }
        groups: dict[int, list[int]] = {}
        for step in steps:
            groups.setdefault(produced_by.get(step, -1), []).append(step)
        return [
            chunk
            for group in groups.values()
            for chunk in step_chunks(group, per_job, cost, hours if cost else None)
        ]

    def eval_shots(self) -> dict[int, list[int]]:
        """Each evaluated step's shot counts (eval.num_fewshot whose grid holds it), by step."""
        shots: dict[int, list[int]] = {}
        for k in self.config["eval"]["num_fewshot"]:
            for step in self.suite.eval_steps(k):
                shots.setdefault(step, []).append(k)
        return dict(sorted(shots.items()))

    @cached_property
    def evals(self) -> list[EvalJob]:
        shots = self.eval_shots()
        return [
            EvalJob(size, tuple((s, k) for s in chunk for k in shots[s]), self.layout, variant)
            for variant in self.variants
            for size in self.sizes
            for chunk in self.chunks(size, shots, shots)
        ]

    def eval_results(self) -> list[str]:
        """Every eval JSON (the input of the long table), by shots, variant, size and step."""
        return [
            self.layout.eval_result(variant, size, step, k)
            for k in self.config["eval"]["num_fewshot"]
            for variant in self.variants
            for size in self.sizes
            for step in self.suite.eval_steps(k)
        ]

    @cached_property
    def remote_tasks(self) -> list[str]:
        return tasks.remote_tasks(self.config)

    @cached_property
    def embedded_choice_tasks(self) -> list[str]:
        return tasks.embedded_choice_tasks(self.config)

    # ------------------------------------------------------------------ term frequency

    @property
    def term_frequency_on(self) -> bool:
        tf = self.config.get("term_frequency") or {}
        return bool(tf.get("steps")) and tf["variant"] in self.variants

    @cached_property
    def term_frequency(self) -> list[TermFrequencyJob]:
        if not self.term_frequency_on:
            return []
        tf = self.config["term_frequency"]
        return [
            TermFrequencyJob(tf["variant"], size, chunk, self.layout)
            for size in self.sizes
            for chunk in self.chunks(size, tf["steps"])
        ]

    def term_frequency_results(self) -> list[str]:
        """The input of the study's table (listed also when the study is off: its rules are
        then never asked for)."""
        tf = self.config["term_frequency"]
        return [
            self.layout.term_frequency_result(tf["variant"], size, step)
            for size in self.sizes
            for step in tf["steps"]
        ]

    @cached_property
    def term_frequency_tasks(self) -> list[str]:
        tf = self.config["term_frequency"]
        return [term_frequency_task(op, k) for op in tf["operations"] for k in tf["shots"]]

    # ------------------------------------------------------------------ intervention

    @cached_property
    def interventions(self) -> list[InterventionJobs]:
        """The runs of models this suite trains (a published suite has no optimizer state)."""
        if not self.trained:
            return []
        baseline = self.suite.intervention_baseline
        return [InterventionJobs(run, baseline, self.layout) for run in self.suite.interventions]

    @cached_property
    def intervention_tasks(self) -> list[str]:
        return tasks.intervention_tasks(self.config)

    @cached_property
    def generated_bias_tasks(self) -> list[str]:
        return tasks.generated_bias_tasks(self.config)

    # ------------------------------------------------------------------ memorization

    @cached_property
    def memorization(self) -> MemorizationPlan:
        rows = memorization_rows_per_job(self.suite)  # shards fit a time limit at every size
        return MemorizationPlan.from_config(self.config, self.suite, rows)

    @property
    def memorization_on(self) -> bool:
        return bool((self.config.get("memorization") or {}).get("steps"))

    def memorization_shards(self) -> list[MemorizationShard]:
        if not self.memorization_on:
            return []
        plan = self.memorization
        return [
            MemorizationShard(variant, size, spec, part)
            for variant in plan.variants
            for size in plan.sizes
            for spec in (plan.spec(step, size) for step in plan.steps)
            for part in range(spec.num_jobs)
        ]

    def memorization_results(self) -> list[str]:
        plan = self.memorization
        return [
            self.layout.memorization_analysis(variant, size, step)
            for variant in plan.variants
            for size in plan.sizes
            for step in plan.steps
        ]

    # ------------------------------------------------------------------ final targets

    def table_steps(self) -> list[int]:
        """The steps of the score tables (Tables 7-14); by default the last evaluated one."""
        return self.config["eval"]["table_steps"] or [max(self.suite.eval_steps(0))]

    def score_tables(self) -> list[str]:
        return [
            self.layout.path("tables", "scores", f"{shots}shot_step{step}_{variant}.{ext}")
            for shots in self.config["eval"]["num_fewshot"]
            for step in self.table_steps()
            if step in self.suite.eval_steps(shots)
            for variant in self.variants
            for ext in ("csv", "md")
        ]

    def figures(self) -> list[str]:
        return [
            *(self.layout.figure("lambada_over_training", ext) for ext in EXTS),
            *(
                self.layout.path("figures", "over_training", f"{task}.{ext}")
                for task in self.config["eval"]["tasks"]
                for ext in EXTS
            ),
            *(
                self.layout.figure(f"scores_by_size_step{self.table_steps()[0]}", ext)
                for ext in (EXTS if "deduped" in self.variants else ())
            ),
        ]

    def term_frequency_targets(self) -> list[str]:
        if not self.term_frequency_on:
            return []
        return [
            self.layout.path("tables", "term_frequency.csv"),
            *(self.layout.path("tables", f"term_frequency_gap.{ext}") for ext in ("csv", "md")),
            *(
                self.layout.figure(f"term_frequency_{operation}", ext)
                for operation in self.config["term_frequency"]["operations"]
                for ext in EXTS
            ),
        ]

    def intervention_targets(self) -> list[str]:
        if not self.interventions:
            return []
        return [
            self.layout.path("tables", "intervention.csv"),
            *(
                self.layout.figure(f"intervention_{fig}", ext)
                for fig in INTERVENTION_FIGURES
                for ext in EXTS
            ),
        ]

    def memorization_targets(self) -> list[str]:
        if not (self.memorization_on and self.memorization.steps):
            return []
        plan = self.memorization
        qq = f"memorization_qq_{plan.figure_size}_step{plan.steps[-1]}"
        return [
            self.layout.path("tables", "memorization.csv"),
            *(self.layout.figure(qq, ext) for ext in EXTS),
        ]

    def final_targets(self) -> list[str]:
        """What `rule all` builds: figures and tables of every stage, the hub uploads of a
        trained suite, and the compute plan."""
        return [
            *self.figures(),
            self.layout.path("tables", "evals.csv"),
            *self.score_tables(),
            *(
                [self.layout.path("tables", "compare_paper.csv")]
                if self.config["eval"]["reference"]
                else []
            ),
            *self.term_frequency_targets(),
            *(out for u in self.uploads for out in u.outputs()),
            *self.intervention_targets(),
            *self.memorization_targets(),
            self.layout.path("plan", "jobs.csv"),
        ]
