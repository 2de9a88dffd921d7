"""workflow.eval.eval_table and workflow.figures: the long eval table, the score tables and the
Fig. 9/10 analogues from synthetic eval JSONs."""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd
import pytest

from workflow.core.io import write_json
from workflow.core.sizes import size_key
from workflow.core.tables import write_table
from workflow.eval.eval_table import collect_evals
from workflow.figures.over_training import plot_over_training

SIZES = ["tiny-70m", "tiny-160m", "tiny-1b", "tiny-1.4b", "tiny-12b"]
STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 96]


def fake_result(size_index: int, step: int, variant: str) -> dict:
    progress = math.log1p(step) / math.log1p(96)
    acc = min(0.05 + 0.12 * size_index * progress + (0.02 if variant == "deduped" else 0), 1)
    ppl = 1000.0 * math.exp(-(1 + 0.5 * size_index) * progress)
    return {
        "results": {
            "lambada_cloze": {
                "acc": acc,
                "acc_stderr": 0.01,
                "perplexity": ppl,
                "perplexity_stderr": None,
            }
        },
        "versions": {"lambada_cloze": 1.0},
        "config": {"num_fewshot": 0},
    }


@pytest.fixture
def eval_tree(tmp_path):
    paths = []
    for variant in ("standard", "deduped"):
        for i, size in enumerate(SIZES):
            for step in STEPS:
                p = tmp_path / "results/tiny/evals" / variant / size / f"step{step}" / "0shot.json"
                write_json(p, fake_result(i, step, variant))
                paths.append(p)
    return paths


def test_size_key_orders_by_parameters():
    assert sorted(SIZES[::-1], key=size_key) == SIZES
    assert sorted(["12b", "70m", "1.4b", "410m"], key=size_key) == ["70m", "410m", "1.4b", "12b"]


def test_collect_evals_long_table(eval_tree, tmp_path):
    df = collect_evals(eval_tree)
    cols = ["variant", "size", "step", "shots", "task", "metric", "value", "stderr"]
    assert list(df.columns) == cols
    # 2 variants x 5 sizes x 9 steps x 2 metrics; each stderr sits beside its metric
    assert len(df) == 2 * 5 * 9 * 2
    assert set(df["metric"]) == {"acc", "perplexity"}
    assert (df[df.metric == "acc"]["stderr"] == 0.01).all()
    assert df[df.metric == "perplexity"]["stderr"].isna().all()  # "N/A": not bootstrapped
    assert df["step"].dtype.kind == "i" and df["shots"].dtype.kind == "i"
    row = df[
        (df.variant == "deduped")
        & (df["size"] == "tiny-1b")
        & (df.step == 8)
        & (df.metric == "acc")
    ]
    assert row["value"].item() == pytest.approx(
        fake_result(2, 8, "deduped")["results"]["lambada_cloze"]["acc"]
    )
    assert list(df[df.variant == "standard"]["size"].unique()) == SIZES  # size order, not lexical
    write_table(df, tmp_path / "tables" / "evals.csv")
    assert (tmp_path / "tables" / "evals.csv").read_text().startswith("variant,size,step")


def test_collect_evals_names_bad_path(tmp_path):
    bad = tmp_path / "evals" / "standard" / "tiny-70m" / "final" / "0shot.json"
    write_json(bad, fake_result(0, 0, "standard"))
    with pytest.raises(ValueError, match="final/0shot.json does not match"):
        collect_evals([bad])


def test_plot_over_training(eval_tree, tmp_path):
    df = collect_evals(eval_tree)
    pdf, png = tmp_path / "figures" / "fig10.pdf", tmp_path / "figures" / "fig10.png"
    plot_over_training(df, pdf, png, epoch_boundaries={"standard": None, "deduped": 64})
    assert pdf.read_bytes().startswith(b"%PDF")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert 800 < width < 3000 and 500 < height < 2000
    assert not list(pdf.parent.glob(".*.tmp"))  # atomic: no temp files left behind
    with pytest.raises(ValueError, match="no results for task 'piqa'"):
        plot_over_training(df, pdf, png, task="piqa")


def test_compare_with_the_papers_table(eval_tree):
    from workflow.core.config import load_config
    from workflow.eval.compare_paper import compare_with_reference

    paper = load_config("config/pythia.yaml")["eval"]["reference"]
    assert paper["step"] == 143000 and paper["shots"] == 0
    assert paper["values"]["standard"]["70m"]["lambada_openai"] == {
        "acc": 0.1846,
        "perplexity": 142.43,
    }
    assert paper["values"]["deduped"]["12b"]["sciq"] == {"acc": 0.929}
    assert sum(len(t) for v in paper["values"].values() for t in v.values()) == 16 * 8
    df = collect_evals(eval_tree)
    reference = {
        "step": 8,
        "values": {
            "deduped": {
                "tiny-1b": {"lambada_cloze": {"acc": 0.5, "perplexity": 10.0}},
                "tiny-99b": {"lambada_cloze": {"acc": 0.5}},  # not evaluated: listed, empty
            }
        },
    }
    table = compare_with_reference(df, reference)
    acc = table[(table["size"] == "tiny-1b") & (table.metric == "acc")].iloc[0]
    ours = fake_result(2, 8, "deduped")["results"]["lambada_cloze"]["acc"]
    assert acc["ours"] == pytest.approx(ours) and acc["diff"] == pytest.approx(ours - 0.5)
    assert acc["z"] == pytest.approx((ours - 0.5) / 0.01)
    missing = table[table["size"] == "tiny-99b"].iloc[0]
    assert np.isnan(missing["ours"]) and missing["paper"] == 0.5


def test_score_tables_and_scores_by_size(eval_tree, tmp_path):
    from workflow.figures.score_table import render_markdown, score_table
    from workflow.figures.scores_by_size import plot_scores_by_size

    df = collect_evals(eval_tree)
    table = score_table(df, step=8, shots=0, variant="deduped", sizes_order=SIZES)
    assert list(table["size"]) == SIZES
    assert list(table.columns) == ["size", "lambada_cloze", "lambada_cloze_stderr"]
    want = fake_result(2, 8, "deduped")["results"]["lambada_cloze"]["acc"]
    assert table.set_index("size").loc["tiny-1b", "lambada_cloze"] == pytest.approx(want)
    md = render_markdown(table, "0-shot accuracy at step 8, deduped models")
    assert md.splitlines()[2] == "| model | lambada_cloze |"
    assert f"| tiny-1b | {want:.4f} ± 0.0100 |" in md
    with pytest.raises(ValueError, match="no acc results for deduped at step 9"):
        score_table(df, step=9, shots=0, variant="deduped")
    plot_scores_by_size(df, tmp_path / "f.pdf", tmp_path / "f.png", step=8, sizes_order=SIZES)
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0


def test_multiple_choice_task_curves_use_acc_norm(tmp_path):
    """A multiple-choice task has no perplexity: its second row of panels draws acc_norm, its
    first acc (different numbers in every row here, per variant too)."""
    steps = [0, 4, 8]
    values = {
        (variant, metric): [offset + step / 100 for step in steps]
        for variant, shift in (("standard", 0.0), ("deduped", 0.05))
        for metric, offset in (("acc", 0.5 + shift), ("acc_norm", 0.3 + shift))
    }
    rows = [
        (variant, "tiny-70m", step, 0, "piqa_style", metric, value, 0.02)
        for (variant, metric), vals in values.items()
        for step, value in zip(steps, vals, strict=True)
    ]
    df = pd.DataFrame(
        rows, columns=["variant", "size", "step", "shots", "task", "metric", "value", "stderr"]
    )
    fig = plot_over_training(df, tmp_path / "p.pdf", tmp_path / "p.png", task="piqa_style")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert fig.axes[2].get_ylabel() == "accuracy (length-normalised)"
    for row, metric in enumerate(("acc", "acc_norm")):
        for col, variant in enumerate(("standard", "deduped")):
            (line,) = fig.axes[2 * row + col].get_lines()  # one size, no epoch marker
            assert list(line.get_xdata()) == steps
            assert list(line.get_ydata()) == pytest.approx(values[(variant, metric)])
