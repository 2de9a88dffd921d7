"""The process group: one process standing in for a launcher, torch.distributed through
DeepSpeed, barriers, a launcher rank's clean exit, and the deterministic torch settings bit-exact
resume needs."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import torch

from workflow.train.errors import run_cli

_LAUNCHER_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        if not torch.cuda.is_available():
            # CPU ranks reduce over gloo, not DeepSpeed's shared-memory all-reduce op. The op
            # is a C++ extension built at its first use in an environment (27-45 s: every
            # fresh CI machine, every new venv), its ranks spin on flags in /dev/shm, and it
            # speeds up only what this suite runs on CPU for tests and tiny suites; a GPU
            # suite reduces over NCCL either way. DeepSpeed caches its op probe for such
            # edits (deepspeed/ops/__init__.py).
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend=None, verbose=False)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def shutdown_distributed() -> None:
    """Destroy the process group while the interpreter is whole. Left to interpreter exit, gloo's
    worker threads may still hold tensors whose release needs the GIL, and a rank that finished
    all its work aborts ("terminate called without an active exception", SIGABRT): seen in CI on
    a TP=2 segment after its last checkpoint, and in 12 of 20 two-rank gloo runs of 300 async
    all-gathers here (0 of 20 with this call; pytorch/pytorch#179291)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def run_rank(main: Callable[[], Any]) -> None:
    """A launcher rank's command line: `run_cli(main)` (its exit codes), then the process group
    destroyed whatever the outcome."""
    try:
        run_cli(main)
    finally:
        shutdown_distributed()


def configure_torch(threads: int) -> None:
    """CPU threads, and deterministic CUDA kernels (CPU kernels already are) for bit-exact
    resume."""
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        # warn_only because not every CUDA kernel has a deterministic variant.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # ...but not its NaN-filling of torch.empty: DeepSpeed's 5e8-element ZeRO buckets
        # would be rewritten every step (measured: 0.8 s/step instead of 0.004 on a tiny model).
        torch.utils.deterministic.fill_uninitialized_memory = False


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def any_rank(flag: bool, world_size: int) -> bool:
    """Whether `flag` is set on any rank (collective when world_size > 1)."""
    if world_size > 1:
        nccl = torch.distributed.get_backend() == "nccl"
        t = torch.tensor([int(flag)], device="cuda" if nccl else "cpu")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        flag = bool(t.item())
    return flag


def node_name() -> str:
    """The node this process runs on: Slurm's name for it inside an srun task (emulated nodes
    of one host differ there), else the host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def tp_placement(tp: int) -> list[tuple[list[int], str]]:
    """Each tensor-parallel group (`tp` consecutive ranks) and the node its ranks run on
    (collective). A group spread over several nodes is refused: its all-reduces in every layer
    would cross the network, which is why launches keep a node's ranks consecutive."""
    world = torch.distributed.get_world_size()
    names: list[str | None] = [None] * world
    torch.distributed.all_gather_object(names, node_name())
    groups = []
    for first in range(0, world, tp):
        ranks = list(range(first, first + tp))
        nodes = sorted({names[r] for r in ranks})
        if len(nodes) > 1:
            from workflow.train.errors import TrainingError

            raise TrainingError(
                f"tensor-parallel group {ranks} spans nodes {', '.join(nodes)}: a group must "
                "stay inside one node (models.X.gpus, GPUs per node, must be a multiple of "
                "model_parallel, and the ranks of a node consecutive)"
            )
        groups.append((ranks, nodes[0]))
    return groups
