"""Test-wide environment: CPU DeepSpeed, quiet libraries, the repository as working dir."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
# No HF_HUB_OFFLINE here: the hub tests talk to a loopback Hub-API test double. Nothing may
# reach huggingface.co: code under test only gets local paths or the loopback endpoint.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
# tests read config/ and run scripts relative to the repository root
os.chdir(REPO)

# Under pytest-xdist (`-n`, pyproject's addopts) the tests of one module share a worker, so that
# a module's expensive fixtures (the tiny DAG, the Slurm cluster, the tensor-parallel run) are
# built once; the reliability package shares one session fixture (its baseline run) and so one
# worker. The slow modules go first, so that the last one to start is a short one.
_SLOW_FIRST = (
    "tests/test_workflow.py",
    "tests/test_slurm.py",
    "tests/reliability",
    "tests/train/test_tp.py",
    "tests/hub/test_published.py",
    "tests/test_bench.py",
    "dry runs",
)


# modules that share something expensive: a session fixture, or the same dry runs (helpers_dag)
_SHARED = {"tests/test_dag_dry_run.py": "dry runs", "tests/plan/test_jobs.py": "dry runs"}


def _group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/reliability/"):
        return "tests/reliability"
    return _SHARED.get(path, path)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    def rank(item):
        group = _group(item.nodeid)
        return _SLOW_FIRST.index(group) if group in _SLOW_FIRST else len(_SLOW_FIRST)

    items.sort(key=rank)  # stable: the order inside a module is kept
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    # xdist (--dist loadgroup) writes each test's group into its id; where it cannot (pytest 9.2
    # with xdist 3.8, pinned out in pyproject) the groups were silently ignored
    if node.config.getvalue("dist") == "loadgroup" and ids and not all("@" in i for i in ids):
        raise pytest.UsageError(
            f"pytest-xdist ignored the test groups ({ids[0]} has none) with pytest "
            f"{pytest.__version__}: install the test extra's versions (pyproject.toml)"
        )
