"""Dry runs of the DAG for the tests that count jobs per rule or read `rule all`'s inputs."""

import functools
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class DryRun:
    counts: dict[str, int]  # jobs per rule (the "Job stats" table)
    all_inputs: list[str]  # the inputs of `rule all`, in order


def dry_run(tmp_path, *args) -> DryRun:
    """`snakemake -n` in a scratch directory (no network, nothing runs).

    A dry run writes nothing that a later one reads, so the same arguments give the same plan:
    each is run once per test process (the paper's takes ~10 s) and shared by the tests that
    ask for it (tests/conftest.py keeps the modules that plan the same configs on one worker).
    """
    return _dry_run(args)


# one scratch root per test process, removed when the process exits
_SCRATCH = tempfile.TemporaryDirectory(prefix="pythia-dry-runs.")


@functools.cache
def _dry_run(args: tuple[str, ...]) -> DryRun:
    scratch = tempfile.mkdtemp(dir=_SCRATCH.name)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile")]
        + ["--directory", scratch, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = {}
    for line in proc.stdout.split("Job stats:")[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    all_inputs = []
    lines = proc.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in ("rule all:", "localrule all:"):
            text = lines[i + 1].strip()
            assert text.startswith("input: "), text
            all_inputs = text[len("input: ") :].split(", ")
    return DryRun(counts, all_inputs)


def dry_run_counts(tmp_path, *args) -> dict[str, int]:
    """Jobs per rule of `snakemake -n` in a scratch directory (no network, nothing runs)."""
    return dry_run(tmp_path, *args).counts
