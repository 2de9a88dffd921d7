"""The repository stays ruff-, snakefmt- and snakemake --lint clean, and the library stays
free of Snakemake."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_dag import dry_run_counts

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


def test_paper_suite_plans_without_network(tmp_path):
    counts = dry_run_counts(tmp_path, "--configfile", "config/pythia.yaml")
    assert counts["download"] == 30
    assert counts["upload"] == 16 * 154
    # zero-shot grid + five-shot grid, one checkpoint per job (eval.steps_per_job: 1)
    suite_evals = [r for r in counts if r.startswith("evaluate_") and "intervention" not in r]
    assert sum(counts[r] for r in suite_evals) == 16 * (27 + 15)
    # the paper's five interventions (70m, 410m, 1.4b, 6.9b at 7%; 1.4b at 21%), both arms
    arms = [r for r in counts if r.startswith("intervention_") and r != "intervention_table"]
    assert sum(counts[r] for r in arms) == 5 and counts["intervention_table"] == 1
    assert (
        sum(n for r, n in counts.items() if r.startswith("evaluate_") and "intervention" in r) == 5
    )


@pytest.mark.parametrize(
    "overlay, expected",
    [
        # 21 shards + .idx per variant, merged; training reads them as is
        ("pythia_preshuffled", {"download_release": 44, "merge_release": 2}),
        # 83 shards + .idx of the deduped documents, merged, then NeoX's packing and shuffle
        ("pythia_idxmaps", {"download_release": 84, "merge_release": 1, "pack_shuffle": 1}),
    ],
)
def test_paper_suite_plans_from_released_data(tmp_path, overlay, expected):
    counts = dry_run_counts(
        tmp_path, "--configfile", "config/pythia.yaml", f"config/sources/{overlay}.yaml"
    )
    for rule in ("corpus", "tokenize", "dedup", "dedup_signatures", "deduped_documents"):
        assert rule not in counts, rule
    for rule, n in expected.items():
        assert counts[rule] == n, (rule, counts)
    assert sum(n for r, n in counts.items() if r.startswith("train_")) > 0


def test_paper_figure_from_published_checkpoints_plans_no_training(tmp_path):
    counts = dry_run_counts(
        tmp_path,
        "results/pythia/figures/lambada_over_training.pdf",
        "--configfile",
        "config/pythia.yaml",
        "--config",
        "checkpoints=published",
    )
    # 16 models x 27 steps fetched from EleutherAI/pythia-*; 0-shot at all, 5-shot at 15
    assert counts["fetch_published"] == 16 * 27
    assert sum(n for r, n in counts.items() if r.startswith("evaluate_")) == 16 * (27 + 15)
    rules = {"evaluate" if r.startswith("evaluate_") else r for r in counts}
    assert {r for r in rules if not r.endswith(":")} == {
        "fetch_published",
        "evaluate",
        "eval_table",
        "fig_lambada_over_training",
        "prefetch_eval_data",  # lm-eval task data, once, before the offline eval jobs
        "total",
    }
