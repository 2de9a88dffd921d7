"""The compute plan: every GPU-relevant job of a suite with its rule, GPUs, nodes, estimated
FLOPs, GPU-hours and storage written, before anything runs.

FLOPs and GPU-hours come from `workflow.plan.resources` (6·N·D for training, 2·N·D forward-only
for evaluation, at `compute.mfu` of `compute.gpu_peak_tflops`). The jobs are those of the job
list (`workflow.plan.jobs`), which the rules are declared over: each stage has an estimator that
costs the jobs it adds to the DAG, and a stage added to the pipeline registers one with
`@stage_estimator` (memorization scoring, for example, is `forward_flops(params, sequences *
tokens)` per shard).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from workflow.core.config import ModelSpec
from workflow.core.io import atomic_path
from workflow.plan.jobs import SuiteJobs
from workflow.plan.memory import forward_job_memory, parallel_sizes, suite_training_memory
from workflow.plan.resources import (
    eval_flops,
    forward_flops,
    gpu_hours,
    memorization_flops,
    model_params,
    segment_tokens,
    training_flops,
)

COLUMNS = [
    "rule",
    "stage",
    "variant",
    "size",
    "first_step",
    "last_step",
    "gpus",
    "nodes",
    "dp",
    "tp",
    "gpu_mem_gb",
    "flops",
    "gpu_hours",
    "storage_bytes",
    "mem_mb",
    "disk_mb",
    "runtime",
]
RESOURCE_COLUMNS = ("mem_mb", "disk_mb", "runtime")  # what a data job asks its node for
SUMMARY_COLUMNS = [
    "size",
    "gpus",
    "nodes",
    "train_flops",
    "train_gpu_hours",
    "eval_gpu_hours",
    "other_gpu_hours",
    "storage_gb",
    "reference_gpu_hours",
    "ratio_to_reference",
]

Estimator = Callable[[SuiteJobs], Iterator[dict]]
STAGE_ESTIMATORS: list[Estimator] = []


def stage_estimator(fn: Estimator) -> Estimator:
    """Register the jobs a pipeline stage adds (rows with the COLUMNS keys)."""
    STAGE_ESTIMATORS.append(fn)
    return fn


def weight_bytes(params: int, precision: str) -> int:
    """A checkpoint's HF weights: the module is saved in its training precision."""
    return params * (4 if precision == "fp32" else 2)


def _gb(nbytes: float) -> float:
    return round(nbytes / 1e9, 1)


def job(rule: str, stage: str, variant: str, size: str, first: int, last: int, **kw) -> dict:
    row = dict.fromkeys(COLUMNS, 0) | dict.fromkeys(RESOURCE_COLUMNS, "")
    row.update(rule=rule, stage=stage, variant=variant, size=size, first_step=first)
    row.update(last_step=last, **kw)
    return row


def forward_job(
    rule: str,
    stage: str,
    variant: str,
    size: str,
    first: int,
    last: int,
    *,
    spec: ModelSpec,
    flops: float,
    compute: Mapping[str, Any],
    memory=None,
    gpus: int = 1,
    **kw,
) -> dict:
    """A forward-only job (evaluation, memorization scoring): `gpus` GPUs of one node (a
    process each, dp = tp = 1) for a model trained on GPUs, none for a CPU suite's; `memory` =
    its estimated peak per GPU (workflow/plan/memory.py)."""
    gpus = gpus if spec.gpus else 0
    hours = gpu_hours(flops, compute) if gpus else 0.0
    if gpus and memory is not None:
        kw["gpu_mem_gb"] = _gb(memory.total)
    return job(
        rule,
        stage,
        variant,
        size,
        first,
        last,
        gpus=gpus,
        nodes=1,
        dp=1,
        tp=1,
        flops=flops,
        gpu_hours=hours,
        **kw,
    )


@stage_estimator
def data_jobs(jobs: SuiteJobs) -> Iterator[dict]:
    """The data jobs of a corpus source (`workflow.data.jobs`: shards, band groups, each job's
    mem_mb, disk_mb and runtime from the corpus size), then the packed training samples of
    each variant (uint16 tokens, seq_length + 1 per sample)."""
    if not jobs.trained:
        return
    corpus = jobs.config["data"]["source"] in ("generated", "pile_jsonl")
    for dj in jobs.data.jobs(jobs.variants) if corpus else ():
        res = {k: dj.resources[k] for k in RESOURCE_COLUMNS}
        for _ in range(dj.count):
            yield job(
                dj.rule, "data", "", "", 0, 0, nodes=1, **res, storage_bytes=res["disk_mb"] << 20
            )
    t = jobs.suite.training
    samples = t.num_samples(jobs.config["data"]["sample_margin"])
    pack = jobs.data.pack_resources(samples) if corpus else {}
    for variant in jobs.variants:
        yield job(
            "pack_shuffle",
            "data",
            variant,
            "",
            0,
            0,
            nodes=1,
            storage_bytes=samples * (t.seq_length + 1) * 2,
            **{k: pack[k] for k in RESOURCE_COLUMNS if k in pack},
        )


@stage_estimator
def training_jobs(jobs: SuiteJobs) -> Iterator[dict]:
    """One job per segment: 6·N·D over its steps on gpus x nodes ranks, data-parallel (dp) x
    tensor-parallel (tp, the model's model_parallel); it writes every checkpoint in it (HF
    weights) and the DeepSpeed state (fp32 master weights + Adam moments: 12 bytes per
    parameter, plus the module) at its last step, which the next segment resumes from. Then the
    uploads."""
    suite, compute = jobs.suite, jobs.config["compute"]
    for variant in jobs.variants:
        for size, spec in suite.models.items():
            n = model_params(suite, spec)
            ckpt = weight_bytes(n, spec.precision)
            mem = _gb(suite_training_memory(suite, spec).total) if spec.gpus else 0
            dp, tp = parallel_sizes(spec)
            for train in (j for j in jobs.train if (j.size, j.variant) == (size, variant)):
                seg = train.segment
                flops = training_flops(n, segment_tokens(suite, seg.start, seg.end))
                gpus = spec.gpus * spec.nodes
                yield job(
                    train.rule,
                    "train",
                    variant,
                    size,
                    train.first_step,
                    seg.end,
                    gpus=gpus,
                    nodes=spec.nodes,
                    dp=dp,
                    tp=tp,
                    gpu_mem_gb=mem,
                    flops=flops,
                    gpu_hours=gpu_hours(flops, compute) if gpus else 0.0,
                    storage_bytes=len(seg.steps) * ckpt + 12 * n + ckpt,
                )
            for up in (u for u in jobs.uploads if (u.size, u.variant) == (size, variant)):
                yield job(up.rule, "upload", variant, size, up.steps[0], up.steps[-1], nodes=1)


@stage_estimator
def eval_jobs(jobs: SuiteJobs) -> Iterator[dict]:
    """lm-eval jobs (eval.steps_per_job checkpoints each): 2·N·D forward over each checkpoint's
    task tokens; a published checkpoint is downloaded first (its weights are the storage)."""
    suite, compute = jobs.suite, jobs.config["compute"]
    for variant in jobs.variants:
        for size, spec in suite.models.items():
            n = model_params(suite, spec)
            fetched = set()
            for ev in (j for j in jobs.evals if (j.variant, j.size) == (variant, size)):
                flops = eval_flops(suite, spec, ev.shots)
                yield forward_job(
                    ev.rule,
                    "eval",
                    variant,
                    size,
                    ev.steps[0],
                    ev.steps[-1],
                    spec=spec,
                    flops=flops,
                    compute=compute,
                    memory=forward_job_memory(jobs.suite, "eval", spec),
                )
                for step in ev.steps if not jobs.trained else ():
                    if step not in fetched:
                        fetched.add(step)
                        yield job(
                            "fetch_published",
                            "fetch",
                            variant,
                            size,
                            step,
                            step,
                            nodes=1,
                            storage_bytes=weight_bytes(n, "fp16"),
                        )


@stage_estimator
def memorization_jobs(jobs: SuiteJobs) -> Iterator[dict]:
    """Memorization scoring: each shard runs the checkpoint forward over prompt + continuation
    tokens of its samples (greedy decoding with a KV cache: one token per position) on
    `memorization.gpus_per_job` GPUs of one node when the suite trains on GPUs."""
    shards = jobs.memorization_shards()
    if not shards:
        return
    suite, compute = jobs.suite, jobs.config["compute"]
    for shard in shards:
        spec = suite.models[shard.size]
        rows = shard.spec.shard_size(shard.part)
        flops = memorization_flops(suite, spec, rows)
        yield forward_job(
            shard.rule,
            "memorization",
            shard.variant,
            shard.size,
            shard.step,
            shard.step,
            spec=spec,
            flops=flops,
            compute=compute,
            memory=forward_job_memory(jobs.suite, "memorization", spec),
            gpus=jobs.config["memorization"]["gpus_per_job"],
            storage_bytes=rows * 16,  # a score and an index per sample (parquet)
        )


@stage_estimator
def term_frequency_jobs(jobs: SuiteJobs) -> Iterator[dict]:
    """Term-frequency arithmetic (grouped as the eval jobs): every (operation, x1, x2, shots)
    prompt of ~16 tokens per example line, (1 + shots) lines, plus the generated answer,
    forward through each checkpoint."""
    if not jobs.term_frequency:
        return
    suite, compute, tf = jobs.suite, jobs.config["compute"], jobs.config["term_frequency"]
    pairs = (tf["x1"][1] - tf["x1"][0] + 1) * (tf["x2"][1] - tf["x2"][0] + 1)
    tokens = sum(
        len(tf["operations"]) * pairs * (16 * (1 + k) + tf["max_new_tokens"]) for k in tf["shots"]
    )
    for tj in jobs.term_frequency:
        spec = suite.models[tj.size]
        flops = forward_flops(model_params(suite, spec), tokens * len(tj.steps))
        yield forward_job(
            tj.rule,
            "term_frequency",
            tj.variant,
            tj.size,
            tj.steps[0],
            tj.steps[-1],
            spec=spec,
            flops=flops,
            compute=compute,
            memory=forward_job_memory(jobs.suite, "term_frequency", spec),
        )


@stage_estimator
def intervention_jobs(jobs: SuiteJobs) -> Iterator[dict]:
    """Gender-bias intervention: the evaluation of both arms (bias and LAMBADA tasks at the
    start, then each arm over the window), and the arms' training from `start` to `end`
    (6·N·D), on the model's own GPU layout."""
    if not jobs.interventions:
        return
    suite, compute = jobs.suite, jobs.config["compute"]
    for iv in jobs.interventions:
        run = iv.run
        spec = suite.models[run.size]
        n = model_params(suite, spec)
        # zero-shot bias and LAMBADA tasks on each checkpoint, as its rule's time limit
        iv_eval_flops = eval_flops(suite, spec, [0] * len(iv.evals), jobs.intervention_tasks)
        yield forward_job(
            iv.eval_rule,
            "intervention",
            run.variant,
            run.size,
            run.start,
            run.end,
            spec=spec,
            flops=iv_eval_flops,
            compute=compute,
            memory=forward_job_memory(jobs.suite, "intervention", spec),
        )
        flops = training_flops(n, segment_tokens(suite, run.start, run.end))
        for arm in iv.arms:
            yield job(
                iv.arm_rule(arm),
                "intervention",
                run.variant,
                run.size,
                run.start,
                run.end,
                gpus=spec.gpus * spec.nodes,
                nodes=spec.nodes,
                dp=parallel_sizes(spec)[0],
                tp=parallel_sizes(spec)[1],
                gpu_mem_gb=_gb(suite_training_memory(suite, spec).total) if spec.gpus else 0,
                flops=flops,
                gpu_hours=gpu_hours(flops, compute) if spec.gpus else 0.0,
                storage_bytes=len(run.window) * weight_bytes(n, spec.precision),
            )


def plan_jobs(config: Mapping[str, Any]) -> list[dict]:
    jobs = SuiteJobs.from_config(config)
    return [row for estimate in STAGE_ESTIMATORS for row in estimate(jobs)]


def summarize(jobs: list[dict], config: Mapping[str, Any]) -> list[dict]:
    """Per size: the GPU layout of its training jobs, GPU-hours by stage (all variants), storage,
    and the reference's GPU-hours for as many models (compute.reference_gpu_hours is per model)."""
    reference = config.get("compute", {}).get("reference_gpu_hours", {})
    variants = len(config["variants"])
    rows: dict[str, dict] = {}
    for j in jobs:
        if not j["size"]:
            continue
        r = rows.setdefault(
            j["size"],
            defaultdict(float, size=j["size"], gpus=0, nodes=0),
        )
        if j["stage"] == "train":
            r["gpus"], r["nodes"] = max(r["gpus"], j["gpus"]), max(r["nodes"], j["nodes"])
            r["train_flops"] += j["flops"]
            r["train_gpu_hours"] += j["gpu_hours"]
        elif j["stage"].startswith("eval"):
            r["eval_gpu_hours"] += j["gpu_hours"]
        else:
            r["other_gpu_hours"] += j["gpu_hours"]
        r["storage_gb"] += j["storage_bytes"] / 1e9
    out = []
    for size, r in rows.items():
        ref = reference.get(size)
        ref_total = ref * variants if ref is not None else None
        out.append(
            {
                "size": size,
                "gpus": r["gpus"],
                "nodes": r["nodes"],
                "train_flops": f"{r['train_flops']:.3e}",
                "train_gpu_hours": round(r["train_gpu_hours"], 1),
                "eval_gpu_hours": round(r["eval_gpu_hours"], 1),
                "other_gpu_hours": round(r["other_gpu_hours"], 1),
                "storage_gb": round(r["storage_gb"], 1),
                "reference_gpu_hours": ref_total if ref_total is not None else "",
                "ratio_to_reference": (
                    round(r["train_gpu_hours"] / ref_total, 3) if ref_total else ""
                ),
            }
        )
    return out


def format_summary(summary: list[dict], jobs: list[dict], config: Mapping[str, Any]) -> str:
    c = config["compute"]
    total = sum(j["gpu_hours"] for j in jobs)
    train = sum(j["gpu_hours"] for j in jobs if j["stage"] == "train")
    ref = sum(r["reference_gpu_hours"] or 0 for r in summary)
    lines = [
        f"compute plan of run {config['run']!r}: {len(jobs)} jobs, {total:,.0f} GPU-hours "
        f"({train:,.0f} training) at MFU {c['mfu']} of {c['gpu_peak_tflops']} TFLOP/s per GPU",
        f"{'size':>8} {'GPUs':>5} {'nodes':>5} {'train FLOPs':>11} {'train GPU-h':>12} "
        f"{'eval GPU-h':>10} {'other GPU-h':>11} {'storage GB':>10} {'reference':>10} "
        f"{'ratio':>6}",
    ]
    for r in summary:
        lines.append(
            f"{r['size']:>8} {r['gpus']:>5} {r['nodes']:>5} {r['train_flops']:>11} "
            f"{r['train_gpu_hours']:>12,.1f} {r['eval_gpu_hours']:>10,.1f} "
            f"{r['other_gpu_hours']:>11,.1f} "
            f"{r['storage_gb']:>10,.1f} {r['reference_gpu_hours']!s:>10} "
            f"{r['ratio_to_reference']!s:>6}"
        )
    if ref:
        lines.append(
            f"training {train:,.0f} GPU-hours vs reference {ref:,.0f} ({train / ref:.3f}x)"
        )
    return "\n".join(lines)


def _number(v):
    if isinstance(v, float):
        return f"{v:.4e}" if abs(v) >= 1e6 else round(v, 4)
    return v


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _number(row[k]) for k in columns})
    return buf.getvalue()


def write_plan(config: Mapping[str, Any], jobs_csv, summary_csv) -> str:
    """Write jobs.csv and summary.csv atomically; return the printed summary."""
    jobs = plan_jobs(config)
    summary = summarize(jobs, config)
    with atomic_path(jobs_csv) as tmp:
        tmp.write_text(_csv(jobs, COLUMNS))
    with atomic_path(summary_csv) as tmp:
        tmp.write_text(_csv(summary, SUMMARY_COLUMNS))
    return format_summary(summary, jobs, config)
