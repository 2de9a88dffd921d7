"""The README's first uses work after its quick start (`pip install -e .`, no extras)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def _requirement_names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_the_slurm_executor_plugin_is_a_base_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "snakemake-executor-plugin-slurm" in _requirement_names(project["dependencies"])
    # nothing that the base install needs hides in an extra
    for extra in ("test", "slurm"):
        assert "snakemake-executor-plugin-slurm" not in _requirement_names(
            project["optional-dependencies"][extra]
        )


def _plan_through_the_slurm_profile(tmp_path, hide=""):
    """`snakemake -n --configfile config/pythia.yaml --profile slurm`, as the README plans the
    paper suite, in this environment reduced to the base install (tests/base_only.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHIA_SLURM_")}
    env["BASE_ONLY_ALSO_HIDE"] = hide
    return subprocess.run(
        [sys.executable, str(REPO / "tests" / "base_only.py"), "snakemake", "-n", "-q"]
        + ["--profile", "slurm", "--configfile", "config/pythia.yaml"]
        + ["--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_paper_plan_through_the_slurm_profile_with_the_base_install_only(tmp_path):
    """The profile's executor is found without the test extra, and the dry run needs no
    cluster settings."""
    proc = _plan_through_the_slurm_profile(tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "invalid choice: 'slurm'" not in proc.stderr


def test_the_base_only_environment_hides_what_is_not_base(tmp_path):
    """The check above can fail: without the Slurm plugin the same command stops as the issue
    saw it after a base install that lacked it; the test extra is not importable there."""
    proc = _plan_through_the_slurm_profile(tmp_path, hide="snakemake-executor-plugin-slurm")
    assert proc.returncode != 0
    assert "invalid choice: 'slurm'" in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "base_only.py"), "pytest", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "not in the base install" in proc.stderr
