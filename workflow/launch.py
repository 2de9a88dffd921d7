"""Distributed launch of a training segment: torchrun on one node, srun + torchrun on several.

A job's rule shell has no SLURM_NTASKS/SLURM_JOB_NODELIST (the Snakemake Slurm jobstep strips
them), so the node count is passed explicitly and the rendezvous host is read inside each task.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from workflow.config import ModelSpec, Segment, SuiteConfig
from workflow.io import atomic_path

MASTER_PORT = 29500


def needs_launcher(spec: ModelSpec) -> bool:
    return spec.gpus * spec.nodes > 1


def train_args(
    suite_json: Path,
    *,
    size: str,
    variant: str,
    samples_prefix: str,
    tokenizer: str,
    segment: Segment,
    out_template: str,
    resume_from: Path | None,
    metrics_path: str | Path | None = None,
) -> list[str]:
    args = [
        "-m",
        "workflow.train",
        "--config-json",
        str(suite_json),
        "--size",
        size,
        "--variant",
        variant,
        "--samples",
        str(samples_prefix),
        "--tokenizer",
        str(tokenizer),
        "--start-step",
        str(segment.start),
        "--end-step",
        str(segment.end),
        "--steps",
        ",".join(map(str, segment.steps)),
        "--out-template",
        out_template,
    ]
    if resume_from is not None:
        args += ["--resume-from", str(resume_from)]
    if metrics_path is not None:
        args += ["--metrics", str(metrics_path)]
    return args


def distributed_command(
    suite: SuiteConfig,
    spec: ModelSpec,
    *,
    variant: str,
    samples_prefix: str,
    tokenizer: str,
    segment: Segment,
    out_template: str,
    resume_from: Path | None,
    state_dir: Path,
    metrics_path: str | Path | None = None,
) -> list[str]:
    """The command that starts spec.gpus ranks on each of spec.nodes nodes."""
    suite_json = Path(state_dir) / f"suite-{spec.name}-{variant}-{segment.end}.json"
    with atomic_path(suite_json) as tmp:
        tmp.write_text(json.dumps(suite.raw, sort_keys=True))
    args = train_args(
        suite_json,
        size=spec.name,
        variant=variant,
        samples_prefix=samples_prefix,
        tokenizer=tokenizer,
        segment=segment,
        out_template=out_template,
        resume_from=resume_from,
        metrics_path=metrics_path,
    )
    if spec.nodes == 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={spec.gpus}",
            *args,
        ]
    inner = " ".join(
        [
            "MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1);",
            shlex.quote(sys.executable),
            "-m",
            "torch.distributed.run",
            "--nnodes",
            str(spec.nodes),
            "--node_rank",
            "$SLURM_NODEID",
            "--nproc_per_node",
            str(spec.gpus),
            "--master_addr",
            "$MASTER_ADDR",
            "--master_port",
            str(MASTER_PORT),
            *(shlex.quote(a) for a in args),
        ]
    )
    return ["srun", "-N", str(spec.nodes), "--ntasks-per-node=1", "bash", "-c", inner]
