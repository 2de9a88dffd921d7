"""The compute plan: every job of a suite with its GPUs and estimated GPU-hours, before any runs.

Training estimates come from each model's `hours_per_segment` (wall hours of a segment job) times
the GPUs it holds; evaluation from `eval.gpu_hours_per_job`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from workflow.config import SuiteConfig
from workflow.io import atomic_path

COLUMNS = [
    "stage",
    "variant",
    "size",
    "first_step",
    "last_step",
    "gpus",
    "nodes",
    "hours",
    "gpu_hours",
]


def plan_jobs(config: Mapping[str, Any]) -> list[dict]:
    suite = SuiteConfig.from_dict(config)
    ev = suite.raw["eval"]
    jobs = []
    for variant in suite.variants:
        for size, spec in suite.models.items():
            gpus = spec.gpus * spec.nodes
            for seg in suite.segments(size):
                steps = seg.end - max(seg.start, 0)
                hours = spec.hours_per_segment * steps / max(spec.segment_steps, 1)
                jobs.append(
                    dict(
                        stage="train",
                        variant=variant,
                        size=size,
                        first_step=max(seg.start, 0),
                        last_step=seg.end,
                        gpus=spec.gpus,
                        nodes=spec.nodes,
                        hours=round(hours, 4),
                        gpu_hours=round(hours * gpus, 4),
                    )
                )
            for shots in ev["num_fewshot"]:
                for step in suite.eval_steps(shots):
                    gh = ev["gpu_hours_per_job"] if spec.gpus else 0.0
                    jobs.append(
                        dict(
                            stage=f"eval_{shots}shot",
                            variant=variant,
                            size=size,
                            first_step=step,
                            last_step=step,
                            gpus=1 if spec.gpus else 0,
                            nodes=1,
                            hours=gh,
                            gpu_hours=gh,
                        )
                    )
            for step in suite.training.schedule:
                jobs.append(
                    dict(
                        stage="upload",
                        variant=variant,
                        size=size,
                        first_step=step,
                        last_step=step,
                        gpus=0,
                        nodes=1,
                        hours=0.0,
                        gpu_hours=0.0,
                    )
                )
    return jobs


def summarize(jobs: list[dict]) -> dict:
    by_stage: dict[str, float] = defaultdict(float)
    by_model: dict[str, float] = defaultdict(float)
    for j in jobs:
        by_stage[j["stage"]] += j["gpu_hours"]
        by_model[f"{j['size']}/{j['variant']}"] += j["gpu_hours"]
    return {
        "jobs": len(jobs),
        "gpu_hours": round(sum(j["gpu_hours"] for j in jobs), 2),
        "gpu_hours_by_stage": {k: round(v, 2) for k, v in by_stage.items()},
        "gpu_hours_by_model": {k: round(v, 2) for k, v in by_model.items()},
    }


def write_plan(config: Mapping[str, Any], out_csv) -> dict:
    jobs = plan_jobs(config)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(jobs)
    with atomic_path(out_csv) as tmp:
        tmp.write_text(buf.getvalue())
    return summarize(jobs)
