"""The whole DAG through Snakemake on a reduced embedded suite (tests/fixtures/ci.yaml).

One module-scoped run; the tests below check the content of what it produced.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from workflow.data.indexed_dataset import MMapIndexedDataset

REPO = Path(__file__).resolve().parent.parent
CI_CONFIG = REPO / "tests" / "fixtures" / "ci.yaml"
CFG = yaml.safe_load(CI_CONFIG.read_text())
SIZES = list(CFG["models"])
VARIANTS = CFG["variants"]
ITERS = CFG["training"]["train_iters"]
B = CFG["training"]["global_batch_size"]

pytestmark = pytest.mark.workflow


def snakemake(workdir, *args, timeout=1500):
    env = dict(os.environ, DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(CI_CONFIG),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dag")
    proc = snakemake(workdir, "--show-failed-logs")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return workdir / "results" / "ci"


def test_second_run_has_nothing_to_do(run):
    proc = snakemake(run.parent.parent, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_dedup_removed_the_planted_near_duplicates(run):
    stats = json.loads((run / "data" / "dedup" / "dedup_stats.json").read_text())
    assert stats["documents_removed"] > 0
    std = MMapIndexedDataset(run / "data" / "standard" / "documents")
    ded = MMapIndexedDataset(run / "data" / "deduped" / "documents")
    assert len(ded) == len(std) - stats["documents_removed"]
    assert ded.num_tokens < std.num_tokens
    report = json.loads((run / "data" / "dedup" / "token_reduction.json").read_text())
    assert (report["tokens_in"], report["tokens_out"]) == (std.num_tokens, ded.num_tokens)
    assert 0 < report["tokens_removed_fraction"] < 1
    for variant in ("standard", "deduped"):  # training checks its tokenizer against this
        meta = json.loads((run / "data" / variant / "samples.json").read_text())
        tokenized = json.loads((run / "data" / "standard" / "documents.json").read_text())
        assert meta["vocab_size"] == tokenized["vocab_size"] > 0
    dropped = np.load(run / "data" / "dedup" / "dropped_ids.npy")
    assert len(dropped) == stats["documents_removed"] and stats["shards"] >= 2


def test_every_checkpoint_loads_and_gives_a_finite_loss(run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for variant in VARIANTS:
        samples = MMapIndexedDataset(run / "data" / variant / "samples")
        for size in SIZES:
            step = 2 * CFG["training"]["checkpoints"]["every"]  # a scheduled checkpoint
            ckpt = run / "models" / variant / size / f"step{step}"
            model = AutoModelForCausalLM.from_pretrained(ckpt)
            AutoTokenizer.from_pretrained(ckpt)
            rows = torch.from_numpy(samples.get_rows(step * B, (step + 1) * B).astype(np.int64))
            with torch.no_grad():
                logits = model(rows[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1)
            )
            assert math.isfinite(loss.item())
            meta = json.loads((ckpt / "pythia_checkpoint.json").read_text())
            assert meta["step"] == step and meta["samples_seen"] == step * B


def test_training_lowered_the_loss(run):
    for variant in VARIANTS:
        for size in SIZES:
            first = json.loads(
                (run / "models" / variant / size / "step1" / "pythia_checkpoint.json").read_text()
            )
            last = json.loads(
                (
                    run / "models" / variant / size / f"step{ITERS}" / "pythia_checkpoint.json"
                ).read_text()
            )
            assert last["metrics"]["loss"] < first["metrics"]["loss"]


def test_batch_viewer_prints_the_rows_of_a_step(run):
    step = 3
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.batch_viewer",
            "--run",
            "ci",
            "--variant",
            "deduped",
            "--step",
            str(step),
            "--results-dir",
            str(run.parent),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = [
        line.split(":", 1)[1].split()
        for line in proc.stdout.splitlines()
        if line.startswith(f"step{step} ")
    ]
    rows = MMapIndexedDataset(run / "data" / "deduped" / "samples").get_rows(
        step * B, (step + 1) * B
    )
    assert [list(map(int, r)) for r in printed] == rows.tolist()


def test_checkpoints_are_on_the_hub_branches(run):
    for variant in VARIANTS:
        for size in SIZES:
            # the last upload job's receipt: one entry per branch it published, in step order
            (path,) = (run / "hub" / variant / size).glob(f"steps*-{ITERS}.json")
            job = json.loads(path.read_text())
            assert [r["step"] for r in job["receipts"]] == job["steps"] and ITERS in job["steps"]
            receipt = job["receipts"][-1]
            assert receipt["branch"] == f"step{ITERS}" and receipt["repo_id"] == job["repo_id"]
            assert "model.safetensors" in receipt["files"]
            repo = run / "hub" / "repos" / f"{receipt['repo_id']}.git"
            head = subprocess.run(
                ["git", "--git-dir", str(repo), "rev-parse", f"refs/heads/step{ITERS}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert head == receipt["commit"]


def test_evals_and_figure(run):
    import pandas as pd

    table = pd.read_csv(run / "tables" / "evals.csv")
    assert set(table["variant"]) == set(VARIANTS) and set(table["size"]) == set(SIZES)
    assert set(table["step"]) == set(CFG["eval"]["steps"])
    acc = table[table["metric"] == "acc"]["value"]
    assert acc.between(0, 1).all()
    for ext, magic in (("pdf", b"%PDF"), ("png", b"\x89PNG")):
        fig = run / "figures" / f"lambada_over_training.{ext}"
        assert fig.read_bytes()[:4] == magic and fig.stat().st_size > 5000
        for task in CFG["eval"]["tasks"]:  # Figs 10-15 analogues, one per task
            fig = run / "figures" / "over_training" / f"{task}.{ext}"
            assert fig.read_bytes()[:4] == magic
        last = max(CFG["eval"]["steps"])
        assert (run / "figures" / f"scores_by_size_step{last}.{ext}").read_bytes()[:4] == magic
    assert set(table["task"]) == set(CFG["eval"]["tasks"])
    assert table[table["task"] == "piqa_style"]["stderr"].notna().all()
    for variant in VARIANTS:  # Tables 7/8 analogues
        scores = pd.read_csv(run / "tables" / "scores" / f"0shot_step{last}_{variant}.csv")
        assert list(scores["size"]) == SIZES
        assert {"lambada_cloze", "piqa_style", "sciq_style", "winogrande_style"} <= set(scores)
        md = (run / "tables" / "scores" / f"0shot_step{last}_{variant}.md").read_text()
        assert f"{variant} models" in md and " ± " in md


def test_memorization_scores_analysis_and_fig3(run):
    import pandas as pd

    mem = CFG["memorization"]
    step, k, n = mem["steps"][-1], mem["prompt_tokens"], mem["continuation_tokens"]
    for variant in VARIANTS:
        for size in SIZES:
            scores = pd.read_parquet(run / "memorization" / variant / size / f"step{step}.parquet")
            assert list(scores["index"]) == list(range(step * B))  # every sample seen
            assert ((scores["score"] * n).round(4) % 1 == 0).all()  # a fraction of l tokens
            a = json.loads((run / "memorization" / variant / size / f"step{step}.json").read_text())
            assert (a["prompt_tokens"], a["continuation_tokens"]) == (k, n)
            assert a["blocks"] == step * B // mem["block_size"] == len(a["counts"])
            assert sum(a["counts"]) == a["memorized"] == int((scores["score"] == 1).sum())
            assert a["planted"]["planted"]["samples"] + a["planted"]["rest"]["samples"] > 0
    table = pd.read_csv(run / "tables" / "memorization.csv")
    assert len(table) == len(VARIANTS) * len(SIZES)
    for ext, magic in (("pdf", b"%PDF"), ("png", b"\x89PNG")):
        fig = run / "figures" / f"memorization_qq_{SIZES[-1]}_step{step}.{ext}"
        assert fig.read_bytes()[:4] == magic


def test_report_embeds_figures_and_plan(run, tmp_path):
    """`snakemake --report`: the figures with their captions and the compute plan."""
    import zipfile

    out = tmp_path / "report.zip"
    proc = snakemake(run.parent.parent, "--report", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = zipfile.ZipFile(out).namelist()
    files = {n.rsplit("/", 1)[-1] for n in names}  # report/data/raw/<hash>/<file name>
    assert {"lambada_over_training.pdf", "piqa_style.png", "jobs.csv", "summary.csv"} <= files
    html = zipfile.ZipFile(out).read(next(n for n in names if n.endswith("report.html")))
    assert b"Figs. 10-15 of Biderman" in html and b"estimated FLOPs" in html  # captions
    # every figure (as its pdf or png) and every table (as its csv) that `rule all` builds
    from workflow.core.config import SuiteConfig, load_config
    from workflow.plan.jobs import SuiteJobs

    targets = SuiteJobs(SuiteConfig.from_dict(load_config(CI_CONFIG))).final_targets()
    wanted = {
        path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for path in targets
        if "/figures/" in path or "/tables/" in path
    }
    reported = {name.rsplit(".", 1)[0] for name in files if name.endswith((".pdf", ".png", ".csv"))}
    assert wanted <= reported, sorted(wanted - reported)
    for category in (
        "Evaluation over training",
        "Evaluation by model size",
        "Memorization",
        "Term frequency",
        "Gender-bias intervention",
        "Compute plan",
    ):
        assert category.encode() in html, category
    for paper in (b"Fig. 7 of Biderman", b"Table 4 of Biderman", b"Fig. 1 of Biderman"):
        assert paper in html


def test_intervention_control_is_the_main_run_and_figures(run):
    """The control arm resumes the main run's step-12 state without the swap: its final weights
    are the main run's, bit for bit; the intervention arm's are not; both are evaluated."""
    import pandas as pd
    from safetensors.torch import load_file

    (iv,) = CFG["intervention"]["runs"]
    base = run / "models" / "deduped" / iv["size"]
    final = f"step{ITERS}"
    main, ctl, itv = (
        load_file(d / final / "model.safetensors")
        for d in (base, base / "control25", base / "intervention25")
    )
    assert all(torch_equal(main[k], ctl[k]) for k in main)
    assert not all(torch_equal(main[k], itv[k]) for k in main)
    table = pd.read_csv(run / "tables" / "intervention.csv")
    assert set(table["arm"]) == {"baseline", "intervention"}
    assert {"pct_stereotype", "net_bias", "acc"} <= set(table["metric"])
    assert table["step"].max() == ITERS and table["step"].min() == 12
    for fig in ("crows_pairs", "winobias", "lambada"):
        assert (run / "figures" / f"intervention_{fig}.png").read_bytes()[:4] == b"\x89PNG"


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)


def test_term_frequency_table_4_and_figures(run):
    """Accuracy per x1 beside its count in the rows the checkpoint saw, the gap table and
    Fig. 7 for both operations (issue #7)."""
    import pandas as pd

    tf = CFG["term_frequency"]
    table = pd.read_csv(run / "tables" / "term_frequency.csv")
    x1 = range(tf["x1"][0], tf["x1"][1] + 1)
    assert len(table) == len(SIZES) * len(tf["steps"]) * 2 * len(tf["shots"]) * len(x1)
    assert table["documents"].eq(1).all() and table["accuracy"].between(0, 1).all()
    counts = pd.read_csv(run / "term_frequency" / "counts_deduped.csv")
    assert counts["count"].sum() > 0 and set(counts["step"]) == set(tf["steps"])
    gap = pd.read_csv(run / "tables" / "term_frequency_gap.csv")
    assert len(gap) == len(SIZES) * 2 * len(tf["shots"]) and gap["gap"].abs().le(100).all()
    assert "| model |" in (run / "tables" / "term_frequency_gap.md").read_text()
    for op in ("plus", "times"):
        assert (run / "figures" / f"term_frequency_{op}.png").read_bytes()[:4] == b"\x89PNG"
