"""Compute plan (FLOPs, GPU-hours, storage), Slurm resources per model size, the multi-node
launch and its rank environment, and the checks made before anything is submitted."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from workflow.core.config import ConfigError, SuiteConfig, load_config, validate_config
from workflow.plan.estimate import format_summary, plan_jobs, summarize, write_plan
from workflow.plan.jobs import SuiteJobs
from workflow.plan.profiles import check_profile_variables, unset_variables
from workflow.plan.resources import (
    check_node_fit,
    eval_flops,
    eval_resources,
    forward_resources,
    gpu_hours,
    memorization_flops,
    model_params,
    train_resources,
    training_flops,
)
from workflow.train.launch import distributed_command, needs_launcher, rank_env_from_slurm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper_raw():
    return load_config("config/pythia.yaml")


@pytest.fixture(scope="module")
def paper(paper_raw):
    return SuiteConfig.from_dict(paper_raw)


@pytest.fixture(scope="module")
def paper_jobs(paper_raw):
    return plan_jobs(paper_raw)


def test_training_flops_are_6nd(paper):
    spec = paper.models["12b"]
    n = model_params(paper, spec)
    assert n == 11_846_072_320  # reference §1.1 (padded vocab 50688 at MP 4)
    tokens = 143_000 * 2_097_152
    assert training_flops(n, tokens) == pytest.approx(6 * n * tokens)
    # 4.26e22 FLOPs at 25% of 312 TFLOP/s
    assert gpu_hours(6 * n * tokens, paper.raw["compute"]) == pytest.approx(
        6 * n * tokens / (0.25 * 312e12) / 3600
    )


def test_plan_covers_every_gpu_job_with_dag_rule_names(paper_jobs, paper, paper_raw):
    jobs = paper_jobs
    train = [j for j in jobs if j["stage"] == "train"]
    # one row per (variant, segment) with the DAG's rule names
    assert len(train) == 2 * sum(len(paper.segments(s)) for s in paper.models)
    # segments sized by training.hours_per_segment: 70m in one job, 12b in 21 of 7000 steps
    assert {j["rule"] for j in train} >= {"train_12b_0_7000", "train_70m_deduped_0_143000"}
    assert not any(j["rule"].startswith("init_") for j in train)  # in the first segments
    uploads = [j for j in jobs if j["stage"] == "upload"]  # one a training segment
    assert len(uploads) == len(SuiteJobs.from_config(paper_raw).uploads) < 2 * 16 * 154 / 4
    # a job holds at most 16 checkpoints of one training segment (written together), each with
    # all its shot counts: the five-shot grid is inside the zero-shot one, so it adds no jobs
    assert set(paper.eval_steps(5)) <= set(paper.eval_steps(0))
    expected = sum(math.ceil(n / 16) for n in eval_steps_per_segment(paper, 0) if n)
    assert len([j for j in jobs if j["stage"] == "eval"]) == 2 * expected
    t12 = [j for j in train if j["size"] == "12b" and j["variant"] == "standard"]
    assert {(j["gpus"], j["nodes"]) for j in t12 if j["last_step"] > 0} == {(256, 32)}
    # the segments add up to 6 N D over all 143,000 steps
    n = model_params(paper, paper.models["12b"])
    assert sum(j["flops"] for j in t12) == pytest.approx(6 * n * 143_000 * 2_097_152)
    # storage: every checkpoint's fp16 weights at least
    assert sum(j["storage_bytes"] for j in t12) > 154 * 2 * n


def eval_steps_per_segment(suite: SuiteConfig, shots: int) -> list[int]:
    """How many of the `shots` eval steps each training segment of each model writes."""
    steps = suite.eval_steps(shots)
    return [
        sum(1 for s in steps if max(seg.start, -1) < s <= seg.end)
        for size in suite.models
        for seg in suite.segments(size)
    ]


def test_training_segments_fit_hours_per_segment(paper, paper_jobs):
    """training.hours_per_segment: 16 cuts every size's run into the fewest equal jobs of at
    most 16 hours of the time model, whatever its GPUs (Slurm runtime = 16 h x 1.5 margin)."""
    compute = paper.raw["compute"]
    assert paper.raw["training"]["hours_per_segment"] == 16
    for size, spec in paper.models.items():
        segs = paper.segments(size)
        hours = [
            gpu_hours(
                training_flops(model_params(paper, spec), 2_097_152 * (s.end - max(s.start, 0))),
                compute,
            )
            / (spec.gpus * spec.nodes)
            for s in segs
        ]
        assert max(hours) <= 16, (size, hours)
        # no more jobs than the run needs, allowing for segments ending on 1000-step checkpoints
        total = sum(hours)
        assert len(segs) <= math.ceil(total / (16 - 1000 * total / 143_000)) + 1, (size, hours)
        assert [s.end for s in segs][-1] == 143_000
    assert len(paper.segments("70m")) == 1 and len(paper.segments("12b")) == 21
    train = [j for j in paper_jobs if j["stage"] == "train"]
    assert max(j["gpu_hours"] / j["gpus"] for j in train) <= 16
    assert (
        max(
            train_resources(paper, paper.models[j["size"]], j["first_step"], j["last_step"])[
                "runtime"
            ]
            for j in train
        )
        <= 16 * 1.5 * 60
    )


def test_hours_per_segment_too_short_for_a_checkpoint_gap(paper_raw):
    raw = copy.deepcopy(paper_raw)
    raw["training"]["hours_per_segment"] = 0.5
    with pytest.raises(ConfigError, match=r"hours_per_segment: 0.5 h is less than 410m takes"):
        SuiteConfig.from_dict(raw)
    # models on CPU keep segment_steps
    raw = copy.deepcopy(paper_raw)
    raw["models"]["70m"].update(gpus=0, nodes=1, segment_steps=50000)
    assert [s.end for s in SuiteConfig.from_dict(raw).segments("70m")] == [50000, 100000, 143000]


def test_plan_summary_against_the_paper(paper_raw, paper_jobs):
    jobs = paper_jobs
    summary = {r["size"]: r for r in summarize(jobs, paper_raw)}
    assert summary["12b"]["reference_gpu_hours"] == 2 * 72_300
    assert summary["70m"]["gpus"] == 32 and summary["12b"]["gpus"] == 256
    # FLOP-based at MFU 0.25: within a factor 1.5 of the paper's (unverified) Table 5 per size
    for r in summary.values():
        assert 0.66 < r["ratio_to_reference"] < 1.5, r
    text = format_summary(list(summary.values()), jobs, paper_raw)
    assert "vs reference 272,140" in text


def test_write_plan_is_atomic_csv(tmp_path):
    raw = load_config("tests/fixtures/ci.yaml")
    summary = write_plan(raw, tmp_path / "jobs.csv", tmp_path / "summary.csv")
    header = (tmp_path / "jobs.csv").read_text().splitlines()[0]
    assert (
        header == "rule,stage,variant,size,first_step,last_step,gpus,nodes,dp,tp,gpu_mem_gb,flops,"
        "gpu_hours,storage_bytes,mem_mb,disk_mb,runtime"
    )
    assert "compute plan of run 'ci'" in summary
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    "size, nodes, tasks_per_node",
    [("70m", 4, 8), ("1b", 8, 8), ("2.8b", 8, 8), ("6.9b", 16, 8), ("12b", 32, 8)],
)
def test_train_resources_follow_the_paper_layout(paper, size, nodes, tasks_per_node):
    res = train_resources(paper, paper.models[size], 0, 5000)
    assert res["nodes"] == nodes and res["tasks_per_node"] == tasks_per_node
    assert res["gres"] == "gpu:8"  # per node
    assert res["mpi"] == "srun" and res["tasks_per_gpu"] == 0
    assert "gpus" not in res and "gpu" not in res  # the plugin's plural/singular pitfalls
    assert res["cpus_per_task"] == 8 and res["mem_mb"] == 8 * 60_000
    assert res["runtime"] >= paper.raw["compute"]["min_runtime_minutes"]


def test_one_node_and_cpu_resources(paper_raw):
    raw = copy.deepcopy(paper_raw)
    raw["models"]["70m"].update(gpus=4, nodes=1)
    raw["models"]["160m"].update(gpus=0, nodes=1)
    suite = SuiteConfig.from_dict(raw)
    one = train_resources(suite, suite.models["70m"], 0, 1000)
    assert (one["gpu"], one["nodes"], one["tasks_per_gpu"], one["cpus_per_task"]) == (4, 1, 0, 32)
    assert "mpi" not in one and "gres" not in one
    cpu = train_resources(suite, suite.models["160m"], 0, 1000)
    assert set(cpu) == {"runtime"}
    ev = eval_resources(suite, suite.models["70m"], [0])
    assert (ev["gpu"], ev["tasks_per_gpu"]) == (1, 0)


def test_a_job_larger_than_a_node_is_refused(paper_raw):
    raw = copy.deepcopy(paper_raw)
    raw["models"]["12b"]["gpus"] = 16
    with pytest.raises(ConfigError, match=r"models\.12b: .* 16 gpus, but compute\.node\.gpus is 8"):
        check_node_fit(SuiteConfig.from_dict(raw))
    raw = copy.deepcopy(paper_raw)
    raw["compute"]["mem_mb_per_gpu"] = 100_000
    with pytest.raises(ConfigError, match=r"800000 mem_mb, but compute\.node\.mem_mb is 512000"):
        check_node_fit(SuiteConfig.from_dict(raw))


def test_snakemake_refuses_an_oversized_node_request_before_the_dag(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (REPO / "tests/fixtures/slurm.yaml").read_text()
    bad.write_text(text.replace("gpus: 1, nodes: 2}", "gpus: 4, nodes: 2}"))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)]
        + ["--directory", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert (
        "models.tiny-70m-2n: a training job asks one node for 4 gpus" in proc.stdout + proc.stderr
    )


def test_multi_node_launch_is_one_srun_rank_per_gpu(paper, tmp_path):
    spec = paper.models["12b"]
    assert needs_launcher(spec)
    seg = paper.segments("12b")[3]
    cmd = distributed_command(
        paper,
        spec,
        variant="deduped",
        samples_prefix="s",
        tokenizer="t.json",
        segment=seg,
        out_template="m/step{step}",
        resume_from=tmp_path,
        state_dir=tmp_path,
        cpus_per_task=8,
    )
    assert cmd[:6] == ["srun", "-N", "32", "-n", "256", "--ntasks-per-node=8"]
    # a node's 8 ranks are consecutive: its two tensor-parallel groups of 4 stay inside it
    assert "--distribution=block" in cmd
    assert "--cpus-per-task=8" in cmd
    assert cmd[cmd.index("-m") + 1] == "workflow.train.launch"
    assert "--start-step" in cmd and "workflow.train.segment" not in cmd
    assert (tmp_path / f"suite-12b-deduped-{seg.end}.json").exists()


def test_paper_plan_trains_6_9b_and_12b_as_pythia_did(paper_jobs, paper):
    """Pythia's model parallelism: 6.9B on 128 GPUs as 64 data-parallel x 2 tensor-parallel,
    12B on 256 as 64 x 4, micro-batch 8 x accumulation 2; every other size data-parallel only;
    every training rank within the 40 GB of an A100 by the memory model."""
    rows = {
        j["size"]: j
        for j in paper_jobs
        if j["stage"] == "train" and j["variant"] == "standard" and j["last_step"] > 0
    }
    got = {s: (r["gpus"], r["dp"], r["tp"]) for s, r in rows.items()}
    assert got["6.9b"] == (128, 64, 2) and got["12b"] == (256, 64, 4)
    others = {s: v for s, v in got.items() if s not in ("6.9b", "12b")}
    assert len(others) == 6 and all(tp == 1 and dp == gpus for gpus, dp, tp in others.values())
    assert all(0 < r["gpu_mem_gb"] < 40 for r in rows.values()), rows
    for size in ("6.9b", "12b"):
        spec = paper.models[size]
        assert (spec.micro_batch_size, spec.gradient_accumulation_steps) == (8, 2)


def test_rank_environment_from_slurm():
    env = {
        "SLURM_PROCID": "9",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS": "16",
        "SLURM_NNODES": "2",
        "SLURM_NTASKS_PER_NODE": "8",
        "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.5",
        "MASTER_PORT": "40000",
    }
    got = rank_env_from_slurm(env)
    assert got == {
        "RANK": "9",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "16",
        "LOCAL_WORLD_SIZE": "8",
        "MASTER_ADDR": "10.0.0.5",
        "MASTER_PORT": "40000",
    }
    # "8(x2)" is Slurm's compressed per-node count
    no_per_node = {**env, "SLURM_NTASKS_PER_NODE": "8(x2)"}
    assert rank_env_from_slurm(no_per_node)["LOCAL_WORLD_SIZE"] == "8"
    assert rank_env_from_slurm({**env, "RANK": "0"}) == {}  # torchrun already placed it
    assert rank_env_from_slurm({**env, "SLURM_NTASKS": "1"}) == {}  # a single task


def test_profile_variables():
    res = {"slurm_partition": "$PYTHIA_SLURM_PARTITION", "slurm_account": "${PYTHIA_A}", "x": 1}
    assert unset_variables(res, {}) == [
        ("slurm_partition", "PYTHIA_SLURM_PARTITION"),
        ("slurm_account", "PYTHIA_A"),
    ]
    check_profile_variables(res, {"PYTHIA_SLURM_PARTITION": "gpu", "PYTHIA_A": ""})
    with pytest.raises(ValueError, match=r"slurm_account reads \$PYTHIA_A, but the variable"):
        check_profile_variables(res, {"PYTHIA_SLURM_PARTITION": "gpu"})


def test_profile_slurm_resolves_from_the_repository_root(tmp_path):
    """`snakemake --profile slurm` as written: the root's `slurm` is the profile (a plan needs no
    cluster variables)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm"]
        + ["--configfile", "tests/fixtures/ci.yaml", "--directory", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith("PYTHIA_")},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Using profiles slurm" in proc.stdout + proc.stderr
    assert (REPO / "slurm").resolve() == (REPO / "profiles" / "slurm").resolve()


def test_a_target_no_rule_makes_is_refused_before_submission(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm"]
        + ["--configfile", "tests/fixtures/ci.yaml", "--directory", str(tmp_path)]
        + ["results/ci/no/such/target.csv"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "No rule to produce results/ci/no/such/target.csv" in proc.stdout + proc.stderr


def test_validated_defaults_fill_compute():
    raw = validate_config(load_config("config/config.yaml"))
    assert raw["compute"]["mfu"] == 0.25 and raw["compute"]["node"]["gpus"] == 8


def test_plan_has_the_case_studies_jobs(paper_jobs):
    """Gender-bias intervention arms train from (1 - f) x T on the model's own GPU layout;
    memorization shards score every sample a checkpoint has seen (2 N D forward)."""
    jobs = [j for j in paper_jobs if j["stage"] == "intervention"]
    arms = {j["rule"]: j for j in jobs}
    assert "intervention_70m_intervention7" in arms and "intervention_1_4b_intervention21" in arms
    j = arms["intervention_6_9b_intervention7"]
    assert (j["gpus"], j["nodes"], j["first_step"], j["last_step"]) == (128, 16, 133000, 143000)
    assert j["flops"] == pytest.approx(training_flops(6_857_302_016, 10_000 * 2_097_152), rel=1e-9)


def test_intervention_eval_is_costed_on_its_own_tasks(paper_raw, paper_jobs):
    """The plan's row and the rule's Slurm resources of an intervention's evaluation come from
    the same FLOPs: its bias and LAMBADA tasks, zero-shot, on each of its checkpoints."""
    jobs = SuiteJobs.from_config(paper_raw)
    rows = {j["rule"]: j for j in paper_jobs}
    assert jobs.interventions
    for iv in jobs.interventions:
        spec, zero = jobs.suite.models[iv.run.size], [0] * len(iv.evals)
        flops = eval_flops(jobs.suite, spec, zero, jobs.intervention_tasks)
        assert flops != eval_flops(jobs.suite, spec, zero)  # not eval.tasks' tokens
        assert rows[iv.eval_rule]["flops"] == pytest.approx(flops)
        res = eval_resources(jobs.suite, spec, zero, jobs.intervention_tasks)
        assert res == forward_resources(jobs.suite, spec, flops)


def test_memorization_shards_fit_one_time_limit_at_every_size(paper, paper_jobs):
    """memorization.hours_per_job: 16 and gpus_per_job: 8 size the shards by the time model:
    each at most 16 hours on a node's 8 GPUs at the plan's MFU, asking Slurm for at most 24 h
    (x 1.5) and 8 GPUs, so a 70m checkpoint is one job and 12b's rows split into as many as its
    parameters need."""
    shards = [j for j in paper_jobs if j["stage"] == "memorization"]
    assert {j["gpus"] for j in shards} == {8}
    assert max(j["gpu_hours"] / j["gpus"] for j in shards) <= 16
    per_size = Counter(j["size"] for j in shards)
    steps = range(23000, 143001, 20000)
    assert per_size["70m"] == 2 * len(steps)  # one shard per checkpoint and variant
    n = model_params(paper, paper.models["12b"])
    rows = math.floor(8 * 16 * 3600 * 0.25 * 312e12 / (2 * n * 64))  # 64 = k + l tokens per row
    assert per_size["12b"] == 2 * sum(math.ceil(s * 1024 / rows) for s in steps)
    assert per_size["12b"] == 2 * (1 + 2 + 3 + 4 + 5 + 6 + 7)  # 7 jobs at step 143000
    spec = paper.models["12b"]
    res = forward_resources(paper, spec, memorization_flops(paper, spec, rows), gpus=8)
    assert 16 * 60 <= res["runtime"] <= 24 * 60 and (res["gpu"], res["tasks_per_gpu"]) == (8, 0)
    assert res["cpus_per_task"] == 64 and res["mem_mb"] == 8 * 60000
    # more GPUs than a node has: refused with the config
    raw = copy.deepcopy(paper.raw)
    raw["memorization"]["gpus_per_job"] = 16
    with pytest.raises(ConfigError, match=r"memorization.gpus_per_job: 16 GPUs, but a node has 8"):
        validate_config(raw)


def test_eval_jobs_fit_one_time_limit(paper_raw):
    """eval.hours_per_job: 16 caps a job's runs by the time model as well as steps_per_job its
    checkpoints: from published checkpoints (no training segments to split them) 12B's 27
    checkpoints, 15 of them also five-shot (~1.4 GPU-hours each), are three jobs where 16 a job
    would make two, and no eval job asks for more than 16 h x 1.5."""
    assert paper_raw["eval"]["hours_per_job"] == 16
    compute = paper_raw["compute"]
    for extra in ({}, {"checkpoints": {"source": "published"}}):
        jobs = SuiteJobs.from_config({**paper_raw, **extra})
        for ev in jobs.evals:
            spec = jobs.suite.models[ev.size]
            assert gpu_hours(eval_flops(jobs.suite, spec, ev.shots), compute) <= 16, ev.rule
            res = eval_resources(jobs.suite, spec, ev.shots)
            assert res["runtime"] <= 16 * 1.5 * 60, (ev.rule, res)
    mine = [e for e in jobs.evals if (e.variant, e.size) == ("standard", "12b")]
    assert [len(e.steps) for e in mine] == [16, 9, 2]
    five = [s for e in mine for s, k in e.runs if k == 5]
    assert five == list(range(3000, 143001, 10000))
    small = [e for e in jobs.evals if (e.variant, e.size) == ("standard", "70m")]
    assert [len(e.steps) for e in small] == [16, 11]  # steps_per_job alone
    unbounded = {**paper_raw, "checkpoints": {"source": "published"}}
    unbounded["eval"] = {**paper_raw["eval"], "hours_per_job": None}
    mine = [
        e
        for e in SuiteJobs.from_config(unbounded).evals
        if (e.variant, e.size) == ("standard", "12b")
    ]
    assert [len(e.steps) for e in mine] == [16, 11]
