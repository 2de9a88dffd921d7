"""The reliability suite's shared run: one tiny suite (tests/reliability/rel.yaml: 1 size, 1
variant, 8 steps) built once per session through the real Snakefile, uploading to minihub (the
Hub test double) with HF_TOKEN set to a marker. Every fault case copies this finished working
directory (results and Snakemake's metadata) and re-runs only the job it attacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from minihub import MiniHub

REPO = Path(__file__).resolve().parents[2]
REL_CONFIG = REPO / "tests" / "reliability" / "rel.yaml"
RUN = "results/rel"
SIZE, VARIANT = "tiny-70m", "standard"
TOKEN = "hf_RELIABILITYmarkerNEVERonDISK0123456789"
# What the suite builds (everything of `all` but the cluster plan, which needs no fault cases).
TARGETS = [
    f"{RUN}/figures/lambada_over_training.png",
    f"{RUN}/figures/over_training/piqa_style.png",
    f"{RUN}/tables/scores/0shot_step8_standard.csv",
    f"{RUN}/hub/{VARIANT}/{SIZE}/steps0-8.json",  # branches step0, step4, step8
    f"{RUN}/data/dedup/kept_ids.npy",  # dedup: a one-variant suite does not need it otherwise
    f"{RUN}/memorization/{VARIANT}/{SIZE}/step8.json",
]


class Workdir:
    """A Snakemake working directory of the reliability suite."""

    def __init__(self, path: Path, config: Path, env: dict[str, str]):
        self.path, self.config, self.env = Path(path), Path(config), env

    @property
    def run(self) -> Path:
        return self.path / RUN

    def cmd(self, *args: str, config: Path | None = None) -> list[str]:
        # targets and options first: --configfile takes several values
        return [
            sys.executable,
            "-m",
            "snakemake",
            *args,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(self.path),
            "--cores",
            "2",
            "--configfile",
            str(config or self.config),
        ]

    def snakemake(self, *args: str, fault: str | None = None, config: Path | None = None, **kw):
        env = dict(self.env)
        if fault:
            env["PYTHIA_WORKFLOW_FAULT"] = fault
        return subprocess.run(
            self.cmd(*args, config=config),
            env=env,
            capture_output=True,
            text=True,
            timeout=kw.pop("timeout", 600),
            # its own process group: a "kill" fault takes down this Snakemake and its jobs only
            start_new_session=True,
            **kw,
        )

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.cmd(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.fixture(scope="session")
def minihub(tmp_path_factory):
    with MiniHub(tmp_path_factory.mktemp("rel-minihub")) as hub:
        hub.server.valid_tokens.add(TOKEN)
        yield hub


@pytest.fixture(scope="session")
def rel_config(tmp_path_factory, minihub) -> Path:
    cfg = yaml.safe_load(REL_CONFIG.read_text())
    cfg["hub"] = {"backend": "huggingface", "org": "rel-org", "endpoint": minihub.url}
    path = tmp_path_factory.mktemp("rel-config") / "rel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def rel_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("rel-hf-home")
    env = {k: v for k, v in os.environ.items() if k != "PYTHIA_WORKFLOW_FAULT"}
    # uploads reach minihub only (loopback); eval and data jobs go offline themselves
    env.update(DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_TOKEN=TOKEN)
    return env


@pytest.fixture(scope="session")
def baseline(tmp_path_factory, rel_config, rel_env):
    """The uninterrupted run every fault case is compared with; (workdir, its console output)."""
    wd = Workdir(tmp_path_factory.mktemp("rel-baseline"), rel_config, rel_env)
    proc = wd.snakemake(*TARGETS, "--show-failed-logs")
    ok(proc)
    return wd, proc.stdout + proc.stderr


@pytest.fixture
def copy(baseline, tmp_path):
    """A private copy of the finished baseline (mtimes and Snakemake metadata kept)."""
    wd, _ = baseline
    dst = tmp_path / "wd"
    shutil.copytree(wd.path, dst, symlinks=True)
    return Workdir(dst, wd.config, wd.env)
