"""Dry runs of the DAG (`snakemake -n`): the jobs each config plans, counted per rule, with no
network, cluster or data."""

import math
import re

import pytest
from helpers_dag import dry_run_counts

from workflow.core.config import SuiteConfig, load_config
from workflow.plan.resources import model_params


def test_paper_suite_plans_without_network(tmp_path):
    counts = dry_run_counts(tmp_path, "--configfile", "config/pythia.yaml")
    assert counts["download"] == 30
    # every checkpoint published, one upload job per training segment (not one a checkpoint)
    uploads = {r: n for r, n in counts.items() if r.startswith("upload_")}
    assert set(uploads.values()) == {1} and len(uploads) < 2 * 16 * 154 / 4  # a rule per variant
    # 70m trains in one job (training.hours_per_segment), so it uploads in one
    assert "upload_70m_deduped_0_143000" in uploads and "upload_70m_0_143000" in uploads
    # zero-shot grid + five-shot grid: at most 16 checkpoints of one training segment a job
    paper = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    expected = 0
    for size in paper.models:
        # each checkpoint with both shot counts (the five-shot steps are zero-shot steps too)
        steps = paper.eval_steps(0)
        for seg in paper.segments(size):
            n = sum(1 for s in steps if max(seg.start, -1) < s <= seg.end)
            expected += math.ceil(n / 16)
    suite_evals = [r for r in counts if r.startswith("evaluate_") and "intervention" not in r]
    assert sum(counts[r] for r in suite_evals) == 2 * expected
    # 12b's first segment (to 7000) writes the 13 zero-shot steps 0..3000: one job per variant
    assert counts["evaluate_12b_0_3000"] == counts["evaluate_12b_deduped_0_3000"] == 1
    # 70m's one segment writes all 27 checkpoints: two jobs of at most 16
    assert {r: n for r, n in counts.items() if re.fullmatch(r"evaluate_70m_\d+_\d+", r)} == {
        "evaluate_70m_0_33000": 1,
        "evaluate_70m_43000_143000": 1,
    }
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
    # downloaded checkpoints are all there at once: 16 per job (eval.steps_per_job), each with
    # its shot counts; 12B's in three (eval.hours_per_job: ~1.4 GPU-hours a five-shot run)
    assert sum(n for r, n in counts.items() if r.startswith("evaluate_")) == 16 * 2 + 2
    assert counts["evaluate_12b_43000_123000"] == counts["evaluate_12b_133000_143000"] == 1
    rules = {"evaluate" if r.startswith("evaluate_") else r for r in counts}
    assert {r for r in rules if not r.endswith(":")} == {
        "fetch_published",
        "evaluate",
        "eval_table",
        "fig_lambada_over_training",
        "prefetch_eval_data",  # lm-eval task data, once, before the offline eval jobs
        "total",
    }


def test_paper_suite_plans_memorization_and_fig3(tmp_path):
    counts = dry_run_counts(
        tmp_path,
        "--configfile",
        "config/pythia.yaml",
        "--",
        "results/pythia/tables/memorization.csv",
        "results/pythia/figures/memorization_qq_12b_step143000.pdf",
    )
    # 16 models x steps 23000..143000 (every 20000) x ceil(step*1024 / rows) shards, rows = what
    # the model scores in memorization.hours_per_job on gpus_per_job GPUs (16 h x 8 GPUs at 25%
    # of 312 TFLOP/s)
    suite = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    shards = 0
    for spec in suite.models.values():
        rows = math.floor(8 * 16 * 3600 * 0.25 * 312e12 / (2 * model_params(suite, spec) * 64))
        shards += 2 * sum(math.ceil(s * 1024 / rows) for s in range(23000, 143001, 20000))
    assert counts["memorization_scores"] == shards == 184
    assert counts["memorization_gather"] == 16 * 7
    assert counts["fig_memorization_qq"] == counts["memorization_table"] == 1


def test_embedded_default_builds_fig3_in_all(tmp_path):
    counts = dry_run_counts(tmp_path)
    assert counts["memorization_scores"] == counts["memorization_gather"] == 16
    assert counts["fig_memorization_qq"] == counts["memorization_table"] == 1


def test_paper_config_plans_the_figures_and_table_4(tmp_path):
    counts = dry_run_counts(
        tmp_path,
        "results/pythia/figures/term_frequency_plus.pdf",
        "results/pythia/figures/term_frequency_times.pdf",
        "results/pythia/tables/term_frequency_gap.md",
        "--configfile",
        "config/pythia.yaml",
    )
    # 8 deduped models x 6 checkpoints (13000..143000 every 26000): a GPU job for the ones each
    # training segment writes (70m: one segment, one job; 160m: three; the others: six)
    paper = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    steps = range(13000, 143001, 26000)
    expected = sum(
        1
        for size in paper.models
        for seg in paper.segments(size)
        if any(seg.start < s <= seg.end for s in steps)
    )
    assert expected == 1 + 3 + 6 * 6
    assert sum(n for r, n in counts.items() if r.startswith("term_frequency_eval_")) == expected
    for rule, n in [
        ("term_frequency_tasks", 1),
        ("term_frequency_counts", 1),
        ("term_frequency_table", 1),
        ("fig_term_frequency", 2),
    ]:
        assert counts[rule] == n, (rule, counts)
    assert not any(r.startswith("train_") and "standard" in r for r in counts)


def test_embedded_default_builds_the_study(tmp_path):
    counts = dry_run_counts(tmp_path)
    assert counts["term_frequency_table"] == 1 and counts["fig_term_frequency"] == 2
    assert sum(n for r, n in counts.items() if r.startswith("term_frequency_eval_")) == 8
