"""The DAG through `snakemake --profile slurm` on a real Slurm cluster on this machine.

tests/slurm/cluster.sh installs Debian's slurm-wlm and munge when missing and starts munged,
slurmctld and two slurmd (Debian's multiple-slurmd support: 2 emulated nodes with 2 fake GPUs
each). One reduced DAG (tests/fixtures/slurm.yaml) runs through the slurm profile exactly as a user
types it; the 2-node model's training segment runs as one Slurm job over both nodes, 2 ranks
started by srun, DeepSpeed over gloo, and must give the 1-rank model's losses; so must the
tensor-parallel model's, 4 ranks over both nodes as 2 data-parallel x 2 tensor-parallel with
each tensor-parallel group inside one node (how Pythia's 6.9B and 12B are laid out). The daemons
are stopped (by their PID files) after the module, unless they were running before it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
CONFIG = REPO / "tests" / "fixtures" / "slurm.yaml"
RUN = "results/slurm"
# 2 fake GPUs per node: a tensor-parallel group of 2 fits in one node, as the paper's groups do
CLUSTER_ENV = {"SLURM_NODES": "2", "SLURM_GPUS_PER_NODE": "2", "SLURM_UP_TIMEOUT": "120"}
# cluster.sh keeps its configuration out of /etc/slurm; only this module's processes see it
SLURM_CONF = "/run/pythia-slurm/slurm.conf"

pytestmark = pytest.mark.slurm


def _daemons_running() -> bool:
    pids = [Path("/run/munge/munged.pid"), Path("/run/slurm/slurmctld.pid")]
    for f in pids:
        try:
            os.kill(int(f.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
    return True


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("Slurm test needs root to install slurm-wlm/munge and start their daemons")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("Slurm test needs Debian's slurm-wlm packages (no apt-get, no slurmctld)")
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="pip install -e '.[test]' (the Slurm plugin)"
    )
    was_running = _daemons_running()
    env = {**os.environ, **CLUSTER_ENV}
    up = subprocess.run(["bash", str(CLUSTER), "up"], env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", SLURM_CONF)
        yield
    if not was_running:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True)


def test_the_cluster_leaves_no_client_configuration_behind(cluster):
    """A slurm.conf in the default place would make every later Slurm client call on this
    machine (the Slurm plugin's `scontrol show config` at each Snakemake start) wait for a
    controller that is gone; the test cluster keeps its own."""
    assert Path(SLURM_CONF).is_file()
    assert not Path("/etc/slurm/slurm.conf").exists()


def snakemake_slurm(workdir: Path, *targets: str, extra=(), env=None, timeout=600):
    """`snakemake --profile slurm` from the repository root, as the README says."""
    cmd = [
        "timeout",
        "-s",
        "INT",  # a hung Snakemake ignores SIGTERM; INT cancels its Slurm jobs
        "-k",
        "30",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "slurm",
        "--configfile",
        str(CONFIG),
        "--directory",
        str(workdir),
        # the profile's 40 s suit a real cluster; tests poll fast (MinJobAge 600 >= 3 x 2)
        "--slurm-init-seconds-before-status-checks",
        "2",
        *extra,
        *targets,
    ]
    env = {
        **os.environ,
        "PYTHIA_SLURM_PARTITION": "debug",
        "PYTHIA_SLURM_ACCOUNT": "",  # no accounting database: no -A
        "DS_ACCELERATOR": "cpu",
        **(env or {}),
    }
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def slurm_jobs() -> list[dict]:
    """Every job slurmctld still knows (MinJobAge 600 s keeps finished ones)."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T|%D|%k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return [dict(id=r[0], state=r[1], nodes=int(r[2]), comment=r[3]) for r in rows]


def checkpoint_losses(ckpt_root: Path, steps) -> list[float]:
    return [
        json.loads((ckpt_root / f"step{s}" / "pythia_checkpoint.json").read_text())["metrics"][
            "loss"
        ]
        for s in steps
    ]


@pytest.fixture(scope="module")
def dag(cluster, tmp_path_factory):
    """One `snakemake --profile slurm` run: the 1-rank model's first segment, the plan, and the
    2-node and tensor-parallel twins' first segments (their jobs run beside the others')."""
    workdir = tmp_path_factory.mktemp("slurm-dag")
    targets = [
        f"{RUN}/models/standard/tiny-70m/step8",
        f"{RUN}/plan/jobs.csv",
        f"{RUN}/models/standard/tiny-70m-2n/step8",
        f"{RUN}/models/standard/tiny-70m-tp/step8",
    ]
    before = {j["id"] for j in slurm_jobs()}
    proc = snakemake_slurm(workdir, *targets)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = [j for j in slurm_jobs() if j["id"] not in before]
    # the plugin's comment: rule_<rule>[_wildcards_<values>]
    return workdir, {j["comment"].split("_wildcards")[0].removeprefix("rule_"): j for j in jobs}


def test_dag_runs_through_sbatch(dag):
    """Data -> tokenizer -> samples -> a training segment (the initialisation included), and
    the plan, each a Slurm job submitted by the profile; the outputs are a trained model and
    the plan."""
    workdir, jobs = dag
    for rule in ("corpus", "tokenizer", "tokenize", "pack_shuffle", "plan"):
        assert jobs[rule]["state"] == "COMPLETED", jobs
    assert (jobs["train_tiny_70m_0_8"]["state"], jobs["train_tiny_70m_0_8"]["nodes"]) == (
        "COMPLETED",
        1,
    )
    # the plugin's per-job Slurm logs, kept by the profile
    logs = workdir / ".snakemake" / "slurm_logs" / "rule_train_tiny_70m_0_8"
    log = next(logs.rglob(f"{jobs['train_tiny_70m_0_8']['id']}.log"))
    assert "1 of 1 steps (100%) done" in log.read_text()
    ckpt = workdir / RUN / "models" / "standard" / "tiny-70m"
    for s in (0, 1, 2, 4, 8):
        assert (ckpt / f"step{s}" / "model.safetensors").is_file()
    losses = checkpoint_losses(ckpt, (1, 2, 4, 8))
    assert losses[-1] < losses[0]  # it learns
    with open(workdir / RUN / "plan" / "jobs.csv") as f:
        plan = {r["rule"]: r for r in csv.DictReader(f)}
    assert {"train_tiny_70m_0_8", "evaluate_tiny_70m_0_8"} <= set(plan)
    assert not any(rule.startswith("init_") for rule in plan)  # step 0 is saved by 0_8
    assert (plan["train_tiny_70m_2n_0_8"]["gpus"], plan["train_tiny_70m_2n_0_8"]["nodes"]) == (
        "2",
        "2",
    )


def test_two_node_segment_matches_one_rank(dag):
    """The 2-node twin: segment 0-8 (the initialisation included) one Slurm job over both nodes
    (sbatch --nodes=2 --gres=gpu:1), 2 ranks started by srun; the losses are the 1-rank model's
    at every step."""
    workdir, jobs = dag
    for rule in ("train_tiny_70m_2n_0_8",):
        assert (jobs[rule]["state"], jobs[rule]["nodes"]) == ("COMPLETED", 2), jobs
    ckpt1 = workdir / RUN / "models" / "standard" / "tiny-70m"
    ckpt2 = workdir / RUN / "models" / "standard" / "tiny-70m-2n"
    for s in (1, 2, 4, 8):
        meta = json.loads((ckpt2 / f"step{s}" / "pythia_checkpoint.json").read_text())
        assert meta["world_size"] == 2
    assert checkpoint_losses(ckpt2, (1, 2, 4, 8)) == pytest.approx(
        checkpoint_losses(ckpt1, (1, 2, 4, 8)), abs=1e-5
    )
    log = workdir / RUN / "logs" / "train" / "standard" / "tiny-70m-2n" / "segment0-8.log"
    assert "srun -N 2 -n 2 --ntasks-per-node=1" in log.read_text()


def test_tp_segment_keeps_each_tensor_parallel_group_in_one_node(dag):
    """The tensor-parallel twin (gpus 2, nodes 2, model_parallel 2): segment 0-8 (the
    initialisation included) one Slurm job over both nodes (sbatch --nodes=2 --gres=gpu:2), 4
    ranks started by srun with a node's ranks consecutive, so that tensor-parallel group 0-1
    runs on node1 and 2-3 on node2 and only the data-parallel all-reduce crosses nodes; the
    losses are the 1-rank model's."""
    workdir, jobs = dag
    for rule in ("train_tiny_70m_tp_0_8",):
        assert (jobs[rule]["state"], jobs[rule]["nodes"]) == ("COMPLETED", 2), jobs
    ckpt1 = workdir / RUN / "models" / "standard" / "tiny-70m"
    ckpt_tp = workdir / RUN / "models" / "standard" / "tiny-70m-tp"
    for s in (1, 2, 4, 8):
        meta = json.loads((ckpt_tp / f"step{s}" / "pythia_checkpoint.json").read_text())
        assert (meta["world_size"], meta["data_parallel"], meta["tensor_parallel"]) == (4, 2, 2)
    assert checkpoint_losses(ckpt_tp, (1, 2, 4, 8)) == pytest.approx(
        checkpoint_losses(ckpt1, (1, 2, 4, 8)), rel=1e-5
    )
    log = (
        workdir / RUN / "logs" / "train" / "standard" / "tiny-70m-tp" / "segment0-8.log"
    ).read_text()
    assert "srun -N 2 -n 4 --ntasks-per-node=2 --distribution=block" in log
    assert "2 data-parallel x 2 tensor-parallel ranks; groups 0-1@node1 2-3@node2" in log, log
    with open(workdir / RUN / "plan" / "jobs.csv") as f:
        plan = {r["rule"]: r for r in csv.DictReader(f)}
    row = plan["train_tiny_70m_tp_0_8"]
    assert (row["gpus"], row["nodes"], row["dp"], row["tp"]) == ("4", "2", "2", "2")


def test_unset_partition_variable_stops_before_submission(cluster, tmp_path):
    """profiles/slurm reads the partition from $PYTHIA_SLURM_PARTITION: unset, one clear line and
    no job submitted."""
    before = {j["id"] for j in slurm_jobs()}
    env = {k: v for k, v in os.environ.items() if k != "PYTHIA_SLURM_PARTITION"}
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--configfile", str(CONFIG)]
    cmd += ["--directory", str(tmp_path), f"{RUN}/plan/jobs.csv"]
    proc = subprocess.run(
        cmd, cwd=REPO, env={**env, "PYTHIA_SLURM_ACCOUNT": ""}, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "slurm_partition reads $PYTHIA_SLURM_PARTITION, but the variable is not set" in (
        proc.stdout + proc.stderr
    )
    assert {j["id"] for j in slurm_jobs()} == before
