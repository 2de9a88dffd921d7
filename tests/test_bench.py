"""The benchmark runner produces its table (tiny sizes; no timing assertions)."""

import pytest

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


_LOG = """Building DAG of jobs...
[Sun Dec  6 10:23:19 2026]
localrule corpus:
    output: results/tiny/data/corpus/train.jsonl
    jobid: 8
    resources: tmpdir=/tmp
[Sun Dec  6 10:23:19 2026]
localrule train_tiny_70m_0_384:
    output: results/tiny/models/standard/tiny-70m/step0
    jobid: 12
    wildcards: variant=standard
[Sun Dec  6 10:23:21 2026]
Finished jobid: 8 (Rule: corpus)
[Sun Dec  6 10:23:21 2026]
localrule train_tiny_1_4b_0_303:
    jobid: 13
[Sun Dec  6 10:23:40 2026]
Finished jobid: 12 (Rule: train_tiny_70m_0_384)
[Sun Dec  6 10:23:41 2026]
localrule evaluate_tiny_70m_0shot_0_384:
    jobid: 14
[Sun Dec  6 10:23:51 2026]
Finished jobid: 13 (Rule: train_tiny_1_4b_0_303)
"""


def test_rule_times_from_a_snakemake_log(tmp_path, capsys):
    """Per-family job times: a job runs from the stamp above its rule block to the one above
    its "Finished jobid" line; the per-size rules sum into their family; unfinished jobs
    (evaluate here) are left out; the baseline column divides its sums by ours."""
    from bench import rule_times

    log = tmp_path / "run.snakemake.log"
    log.write_text(_LOG)
    times = rule_times.parse_log(log)
    assert times.families == {"corpus": [2.0], "train": [21.0, 30.0]}
    assert (times.job_seconds, times.wall) == (53.0, 32.0)  # 10:23:19 to 10:23:51
    base = tmp_path / "base.snakemake.log"
    base.write_text(_LOG.replace("10:23:40", "10:24:01").replace("10:23:51", "10:24:21"))
    assert rule_times.main([str(log), "--baseline", str(base)]) == 0
    out = capsys.readouterr().out
    assert "| train | 2 | 51 | 25.5 | 96.2% | 2 | 102 | 2.00x |" in out
    assert "| all jobs | 3 | 53 | | | 3 | 104 | 1.96x |" in out
    assert "| wall (first start to last end) | | 32 | | | | 62 | 1.94x |" in out
    empty = tmp_path / "empty.log"
    empty.write_text("Building DAG of jobs...\n")
    with pytest.raises(SystemExit, match="no finished jobs found"):
        rule_times.parse_log(empty)
