"""The benchmark runner produces its table (tiny sizes; no timing assertions)."""

from bench import run
from bench.common import Result, table

TINY = {
    "tokenize_mb": 0.05,
    "vocab": 300,
    "minhash_docs": 20,
    "maps": (1000, 2_000_000, 500, 2048),
    "rows": 4096,
    "train": {"seq": 16, "batch": 2, "layers": 1, "hidden": 32, "heads": 2, "steps": 2},
    "eval": {"checkpoints": 2, "documents": 10},
    "term_frequency": {"tokens": 2_000_000, "baseline_rows": 50},
    "memorization": {"sequences": 16, "naive_sequences": 2, "layers": 1, "hidden": 32, "heads": 2},
}


def test_table_format():
    rows = [Result("a", "1", "2", 0.5, "t", False, "why"), Result("b", "3", "-", None, "t", True)]
    text = table(rows).splitlines()
    assert text[0] == "| benchmark | ours | baseline | ratio | target | pass |"
    assert text[2] == "| a | 1 | 2 | 0.50x | t | FAIL |"
    assert text[3] == "| b | 3 | - | - | t | pass |"
    assert text[-1] == "- a: why"


def test_quick_benchmarks_run(tmp_path, capsys, monkeypatch):
    # one run of every benchmark through the CLI; the results are also caught on their way to
    # the table (run_all runs for real, once)
    results = []
    real_run_all = run.run_all
    monkeypatch.setattr(run, "run_all", lambda *a: results.extend(real_run_all(*a)) or results)
    monkeypatch.setattr(run, "QUICK", TINY)
    assert run.main(["--quick", "--workdir", str(tmp_path)]) == 0
    assert len(results) == 8
    assert "counts identical" in results[7].note  # token-id counts = decoded counts
    assert results[6].note == ""  # batched continuations equal per-sequence generate's
    assert results[5].note == ""  # grouped eval gives the per-checkpoint numbers
    assert "max |loss difference|" in results[4].note  # both training loops ran
    minhash_result = results[1]
    assert minhash_result.note == ""  # signatures identical to datasketch's
    assert results[0].note == ""  # token ids identical to the baseline's
    out = capsys.readouterr().out
    assert "| benchmark | ours | baseline | ratio | target | pass |" in out
    assert out.count("\n| ") >= 5
    assert all(f"| {r.name} |" in out for r in results)
