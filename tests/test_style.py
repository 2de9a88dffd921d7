"""The repository stays ruff-, snakefmt- and snakemake --lint clean, and the library stays
free of Snakemake."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(*cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_clean():
    proc = run("ruff", "check", "--no-cache", "workflow", "scripts", "tests", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run("ruff", "format", "--check", "--no-cache", "workflow", "scripts", "tests", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt not installed")
def test_snakefmt_clean():
    proc = run("snakefmt", "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_clean():
    proc = run(sys.executable, "-m", "snakemake", "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_library_does_not_import_snakemake():
    for path in (REPO / "workflow").rglob("*.py"):
        text = path.read_text()
        assert "import snakemake" not in text and "from snakemake" not in text, path


def test_core_imports_no_stage():
    """workflow.core is below every stage: the config, its checks, the checkpoint format and the
    released data's registry import no stage package, not even in a function."""
    stage = re.compile(r"^\s*(?:from|import)\s+workflow\.(\w+)", re.MULTILINE)
    for path in (REPO / "workflow" / "core").rglob("*.py"):
        used = set(stage.findall(path.read_text())) - {"core"}
        assert not used, (path, used)


def test_no_import_cycles_between_stage_packages():
    """The stage packages form a DAG (function-level imports counted): core <- data <- train,
    eval <- studies, plan on top."""
    import ast

    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:3] if parts[1:2] == ["studies"] else parts[:2])

    edges: dict[str, set[str]] = {}
    for path in (REPO / "workflow").rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workflow."):
                a, b = package(rel), package(node.module)
                if a != b and b != "workflow":
                    edges.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen=()) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, (*seen, n)))
            for n in edges.get(start, ())
        )

    cycles = [(a, b) for a, targets in edges.items() for b in targets if reaches(b, a)]
    assert not cycles, cycles
