"""Distributed launch of a training segment: torchrun on one node; on several, `srun` starts one
rank per GPU and each rank takes its place from Slurm's environment.

A job's rule shell has no SLURM_NTASKS/SLURM_JOB_NODELIST (the Snakemake Slurm jobstep strips
them), so srun gets nodes and tasks explicitly. Inside each task srun sets SLURM_PROCID,
SLURM_LOCALID and SLURM_NTASKS again; `python -m workflow.train.launch` turns them into the RANK,
LOCAL_RANK, WORLD_SIZE and MASTER_ADDR/PORT that torch.distributed's env:// rendezvous (and so
DeepSpeed) reads, then runs `workflow.train.segment`. Rank 0 is the first task on the first node
of the allocation, where the batch script (and so srun) runs: SLURM_LAUNCH_NODE_IPADDR is its
address.

Tensor parallelism (`models.X.model_parallel`) needs no launcher option of its own: DeepSpeed's
mesh makes every `model_parallel` consecutive ranks one tensor-parallel group, and both launches
number a node's ranks consecutively (torchrun on one node; srun --distribution=block with
`gpus` tasks per node, a multiple of model_parallel), so each group is inside one node and only
data-parallel traffic crosses nodes. The training checks the placement at start
(distributed.tp_placement).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from workflow.core.config import ModelSpec, Segment, SuiteConfig
from workflow.core.io import atomic_path

MASTER_PORT = 29500


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


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
    extra: Sequence[str] = (),
) -> list[str]:
    args = [
        "-m",
        "workflow.train.segment",
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
        "--keep-state",
        ",".join(map(str, segment.keep_state)),
        "--out-template",
        out_template,
    ]
    if resume_from is not None:
        args += ["--resume-from", str(resume_from)]
    if metrics_path is not None:
        args += ["--metrics", str(metrics_path)]
    return args + list(extra)


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
    cpus_per_task: int = 1,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command that starts spec.gpus ranks on each of spec.nodes nodes (`extra_args` go to
    workflow.train.segment's CLI, e.g. --token-map): spec.gpus x spec.nodes ranks =
    data-parallel x spec.model_parallel tensor-parallel, a node's ranks consecutive."""
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
        extra=extra_args,
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
    tasks = spec.nodes * spec.gpus
    return [
        "srun",
        "-N",
        str(spec.nodes),
        "-n",
        str(tasks),
        f"--ntasks-per-node={spec.gpus}",
        # ranks 0..gpus-1 on the first node, and so on: whole tensor-parallel groups per node
        "--distribution=block",
        f"--cpus-per-task={cpus_per_task}",
        "--kill-on-bad-exit=1",
        # a port free on this (the first) node, where rank 0 listens
        f"--export=ALL,MASTER_PORT={free_port()}",
        sys.executable,
        "-m",
        "workflow.train.launch",
        *args[2:],  # workflow.train.launch runs workflow.train.segment's CLI in each rank
    ]


def rank_env_from_slurm(env: Mapping[str, str], master_port: int = MASTER_PORT) -> dict[str, str]:
    """The env:// rendezvous variables of this srun task (empty outside a multi-task step).

    A launcher that already set RANK (torchrun) wins; MASTER_ADDR/MASTER_PORT set by the job
    (exported through srun) win over the defaults."""
    if "RANK" in env or "SLURM_PROCID" not in env or int(env.get("SLURM_NTASKS", "1")) < 2:
        return {}
    world = int(env["SLURM_NTASKS"])
    nodes = int(env.get("SLURM_NNODES", env.get("SLURM_JOB_NUM_NODES", "1")))
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0].split(",")[0]
    return {
        "RANK": env["SLURM_PROCID"],
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": per_node or str(max(world // max(nodes, 1), 1)),
        "MASTER_ADDR": env.get("MASTER_ADDR") or env.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1"),
        "MASTER_PORT": env.get("MASTER_PORT") or str(master_port),
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of one srun task: place it in the process group, then train (exit codes as
    `python -m workflow.train.segment`: 2 for a training error, 75 when preempted)."""
    os.environ.update(rank_env_from_slurm(os.environ))
    # Here, not at the top: this module builds command lines without importing torch.
    from workflow.train.distributed import run_rank
    from workflow.train.segment import main as train_main

    run_rank(lambda: train_main(argv))


if __name__ == "__main__":
    main()
