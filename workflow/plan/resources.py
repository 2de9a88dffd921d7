"""Compute of the suite: FLOPs per job, GPU-hours at an assumed MFU, and the Slurm resources a
job asks for, all from the model spec (no Snakemake here; rules/*.smk and the plan call it).

FLOPs follow Kaplan et al.'s 6·N·D for training (forward + backward) and 2·N·D for a forward
pass (evaluation, memorization scoring), with N the model's total parameters as in the paper's
size names. GPU-hours = FLOPs / (MFU · peak) / 3600: the MFU is a config choice
(`compute.mfu`), not a measurement, and the plan says so.

Resources follow snakemake-executor-plugin-slurm 2.8.0 (../shared/slurm/README.md §6):
- one node: `gpu: G` (-> sbatch --gpus=G) with `tasks_per_gpu: 0`, so the plugin adds no
  --ntasks-per-gpu (tasks would otherwise be reused as tasks per GPU); the rule runs once and
  starts G ranks itself (torchrun --standalone).
- several nodes: `gres: gpu:G` (per node) with `nodes: N`, `mpi: srun` and one task per GPU
  (`tasks_per_node: G`, or `tasks: N` when G = 1, since the plugin refuses tasks_per_node=1);
  the rule's shell starts the ranks with `srun -N N -n N·G` (the jobstep strips SLURM_* from the
  rule's environment, so srun needs them explicitly) and each rank reads its rank from Slurm's
  environment (`workflow.train.segment.launcher_env`).
- never `gpus` (plural): the plugin does not submit it but the jobstep asks srun for it, and the
  job fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from workflow.core.compute import (  # noqa: F401 (re-exported: the plan and tests name them here)
    forward_flops,
    gpu_hours,
    training_flops,
)
from workflow.core.config import ConfigError, ModelSpec, SuiteConfig
from workflow.core.layout import Layout
from workflow.data.jobs import DataJobs
from workflow.plan.memory import (
    GIB,
    fit_hints,
    forward_job_memory,
    suite_training_memory,
)


def model_params(suite: SuiteConfig, spec: ModelSpec) -> int:
    """Total parameters with Megatron's padded vocabulary (input and output embeddings)."""
    return suite.model_params(spec)


def segment_tokens(suite: SuiteConfig, first_step: int, last_step: int) -> int:
    """Tokens a training job processes: steps (first, last] of the global batch."""
    return max(last_step - max(first_step, 0), 0) * suite.training.tokens_per_step


def runtime_minutes(hours_of_gpus: float, gpus: int, compute: Mapping[str, Any]) -> int:
    """Wall minutes to ask for: the estimate spread over the job's GPUs, times a margin."""
    if gpus <= 0:
        return int(compute["min_runtime_minutes"])
    minutes = hours_of_gpus / gpus * 60.0 * compute["runtime_margin"]
    return max(int(compute["min_runtime_minutes"]), math.ceil(minutes))


def train_resources(
    suite: SuiteConfig, spec: ModelSpec, first_step: int, last_step: int
) -> dict[str, Any]:
    """Snakemake resources of one training segment (see the module docstring for the layout)."""
    compute = suite.raw["compute"]
    g, n = spec.gpus, spec.nodes
    flops = training_flops(model_params(suite, spec), segment_tokens(suite, first_step, last_step))
    res: dict[str, Any] = {
        "runtime": runtime_minutes(gpu_hours(flops, compute), g * n, compute),
    }
    if g == 0:
        return res
    cpus = compute["cpus_per_gpu"]
    res.update(
        nodes=n,
        tasks_per_gpu=0,
        mem_mb=g * compute["mem_mb_per_gpu"],  # sbatch --mem is per node
    )
    if n == 1:
        res.update(gpu=g, cpus_per_task=g * cpus)
    else:
        res.update(gres=f"gpu:{g}", mpi="srun", cpus_per_task=cpus)
        if g > 1:
            res["tasks_per_node"] = g
        else:
            res["tasks"] = n
    return res


def forward_resources(
    suite: SuiteConfig, spec: ModelSpec, flops: float, gpus: int = 1
) -> dict[str, Any]:
    """A forward-only job of `spec` (evaluation, memorization scoring, term frequency): `gpus`
    GPUs of one node when the suite trains on GPUs (none otherwise), its time limit from `flops`
    spread over them."""
    compute = suite.raw["compute"]
    gpus = gpus if spec.gpus else 0
    res: dict[str, Any] = {
        "runtime": runtime_minutes(gpu_hours(flops, compute), gpus, compute),
        "mem_mb": 4000,  # on CPU: a tiny model, its data and the harness
    }
    if gpus:
        res.update(
            gpu=gpus,
            tasks_per_gpu=0,
            cpus_per_task=gpus * compute["cpus_per_gpu"],
            mem_mb=gpus * compute["mem_mb_per_gpu"],
        )
    return res


def eval_resources(
    suite: SuiteConfig,
    spec: ModelSpec,
    shots: Sequence[int],
    tasks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One eval job (lm-eval runs on checkpoints of one model, `shots` examples each): one GPU
    when the suite trains on GPUs."""
    return forward_resources(suite, spec, eval_flops(suite, spec, shots, tasks))


def eval_flops(
    suite: SuiteConfig,
    spec: ModelSpec,
    shots: Sequence[int],
    tasks: Sequence[str] | None = None,
) -> float:
    """lm-eval runs on checkpoints of `spec`, one a checkpoint with `shots` examples each: 2·N·D
    over the tasks' tokens (eval_tokens) of each run."""
    tokens = sum(eval_tokens(suite, k, tasks) for k in shots)
    return forward_flops(model_params(suite, spec), tokens)


def memorization_flops(suite: SuiteConfig, spec: ModelSpec, rows: int) -> float:
    """A memorization shard: the checkpoint forward over prompt + continuation tokens of each
    row (greedy decoding with a KV cache: one token per position)."""
    mem = suite.raw["memorization"]
    tokens = rows * (mem["prompt_tokens"] + mem["continuation_tokens"])
    return forward_flops(model_params(suite, spec), tokens)


def memorization_rows_per_job(suite: SuiteConfig) -> dict[str, int | None]:
    """Rows per memorization shard of each size: at most `memorization.samples_per_job` and, for
    a model trained on GPUs, at most what its `memorization.gpus_per_job` GPUs score in
    `memorization.hours_per_job` hours at `compute.mfu`, so every shard fits one time limit
    (hours x runtime_margin) whatever the size; None when neither bounds it (one shard per
    checkpoint)."""
    mem, compute = suite.raw["memorization"], suite.raw["compute"]
    rows: dict[str, int | None] = {}
    for size, spec in suite.models.items():
        caps = [mem["samples_per_job"]] if mem["samples_per_job"] else []
        if spec.gpus and mem.get("hours_per_job"):
            per_row = gpu_hours(memorization_flops(suite, spec, 1), compute)
            gpu_hours_per_job = mem["hours_per_job"] * mem["gpus_per_job"]
            caps.append(max(1, math.floor(gpu_hours_per_job / per_row)))
        rows[size] = min(caps, default=None)
    return rows


def eval_tokens(suite: SuiteConfig, shots: int, tasks: Sequence[str] | None = None) -> float:
    """Tokens lm-eval feeds one checkpoint for all `tasks` (default: eval.tasks): each task's
    tokens (context and every choice; `compute.eval_tokens_per_task`, a rough size of the
    paper's tasks) times (1 + shots), since each few-shot example repeats about one request's
    length."""
    per = suite.raw["compute"]["eval_tokens_per_task"]
    tasks = suite.raw["eval"]["tasks"] if tasks is None else tasks
    return sum(per.get(t, per["default"]) for t in tasks) * (1 + shots)


def check_node_fit(suite: SuiteConfig, source: str = "config") -> None:
    """Refuse, before any job is submitted, a model whose jobs would ask one node for more GPUs,
    CPUs or memory than `compute.node` has (Slurm would leave such a job pending forever), and
    a data job that would (its memory and cores from the corpus size: workflow/data/jobs.py)."""
    compute = suite.raw["compute"]
    node = compute["node"]
    problems = []
    for name, spec in suite.models.items():
        want = {
            "gpus": spec.gpus,
            "cpus": spec.gpus * compute["cpus_per_gpu"] or suite.training.threads,
            "mem_mb": spec.gpus * compute["mem_mb_per_gpu"],
        }
        for key, value in want.items():
            if value > node[key]:
                problems.append(
                    f"models.{name}: a training job asks one node for {value} {key}, but "
                    f"compute.node.{key} is {node[key]} (lower models.{name}.gpus, raise nodes, "
                    f"or adjust compute.cpus_per_gpu / compute.mem_mb_per_gpu)"
                )
    if suite.raw["data"]["source"] in ("generated", "pile_jsonl"):  # the data jobs, from sizes
        data = DataJobs(suite.raw, Layout(str(suite.run_dir())))
        problems += data.oversized(node, suite.variants)
    if problems:
        raise ConfigError(f"invalid {source}:\n" + "\n".join(f"  {p}" for p in problems))


def check_gpu_memory(suite: SuiteConfig, source: str = "config") -> None:
    """Refuse, before any job is submitted, a model whose training rank, or one of its
    forward-only jobs (evaluation, memorization, term frequency, intervention evals), would not
    fit one GPU of `compute.node` by the memory model (workflow/plan/memory.py): one line per
    job kind naming the model, the estimate, the limit and what would make it fit."""
    node = suite.raw["compute"]["node"]
    gpu_models = [name for name, spec in suite.models.items() if spec.gpus]
    if not gpu_models:
        return
    if node.get("gpu_mem_gb") is None:
        raise ConfigError(
            f"invalid {source}: compute.node.gpu_mem_gb is not set, but models "
            f"{', '.join(gpu_models)} train on GPUs: give the memory of one GPU in GB "
            "(the paper's A100s: 40) so that every job is checked to fit it"
        )
    limit = node["gpu_mem_gb"] * 1e9
    problems = []
    for name in gpu_models:
        spec = suite.models[name]
        est = suite_training_memory(suite, spec)
        if est.total > limit:
            hints = fit_hints(suite, spec, limit)
            states = (est.weights + est.gradients + est.optimizer) / GIB
            fix = "would fit with " + " or ".join(hints) if hints else "nothing alone makes it fit"
            problems.append(
                f"models.{name}: a training rank needs ~{est.total / 1e9:.1f} GB of GPU memory "
                f"(weights, gradients and optimizer {states:.1f} GiB, activations "
                f"{est.activations / GIB:.1f} GiB, logits and loss {est.loss / GIB:.1f} GiB), "
                f"more than compute.node.gpu_mem_gb = {node['gpu_mem_gb']}; {fix}"
            )
        for stage, batch_key in _forward_stages(suite, name):
            est = forward_job_memory(suite, stage, spec)
            if est.total > limit:
                problems.append(
                    f"models.{name}: its {stage} job needs ~{est.total / 1e9:.1f} GB of GPU memory "
                    f"(weights {est.weights / GIB:.1f} GiB), more than compute.node.gpu_mem_gb = "
                    f"{node['gpu_mem_gb']}; lower {batch_key}"
                )
    if problems:
        raise ConfigError(f"invalid {source}:\n" + "\n".join(f"  {p}" for p in problems))


def _forward_stages(suite: SuiteConfig, size: str) -> list[tuple[str, str]]:
    """(stage, its batch-size key) of every forward-only job kind `size` has in the suite."""
    raw = suite.raw
    stages = [("eval", "eval.batch_size")]
    if (raw.get("memorization") or {}).get("steps"):
        stages.append(("memorization", "memorization.batch_size"))
    if (raw.get("term_frequency") or {}).get("steps"):
        stages.append(("term_frequency", "term_frequency.batch_size"))
    if any(r.size == size for r in suite.interventions):
        stages.append(("intervention", "intervention.batch_size"))
    return stages
