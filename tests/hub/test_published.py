"""Published checkpoints as a source: EleutherAI-style repos (branch step{N}, main = final step)
served by minihub, fetched through the unmodified huggingface_hub client, verified, and run
through the DAG up to a figure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers_checkpoints import block_external_network, isolate_hf, make_checkpoint
from minihub import MiniHub

from workflow.core.checkpoint import PUBLISHED_JSON
from workflow.core.config import without_case_studies
from workflow.hub import fetch_published
from workflow.hub.fetch_published import fetch_published_checkpoint
from workflow.hub.layout import HubError

REPO_ROOT = Path(__file__).resolve().parents[2]
ORG = "EleutherAI"
STEPS = (0, 4, 8)  # 8 = the final step = main
GITATTRIBUTES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def _publish_suite(api, staging: Path, repos: dict[str, int], bad: dict[str, int] | None = None):
    """Each repo gets branches step{N} (seeded weights) and main = the final step, like
    EleutherAI/pythia-*; `bad` = {repo: step} whose branch holds main's weights (pythia#205)."""
    for repo, seed in repos.items():
        api.create_repo(repo, exist_ok=True)
        for step in (*STEPS, "main"):
            s = STEPS[-1] if step == "main" or (bad or {}).get(repo) == step else step
            d = staging / repo / str(step)
            make_checkpoint(d, s, seed=seed * 100 + s, deepspeed=False)
            (d / ".gitattributes").write_text(GITATTRIBUTES)
            branch = "main" if step == "main" else f"step{step}"
            if branch != "main":
                api.create_branch(repo, branch=branch, exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=d, revision=branch)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    attempts = block_external_network(monkeypatch)
    with MiniHub(tmp_path / "hub") as h:
        isolate_hf(monkeypatch, tmp_path / "hf_home", offline=False, endpoint=h.url)
        h.api = HfApi(endpoint=h.url, token="test")
        yield h
    assert attempts == [], f"tried to reach the network: {attempts}"


def test_fetch_a_step_verified(hub, tmp_path):
    repo = f"{ORG}/pythia-tiny-70m"
    _publish_suite(hub.api, tmp_path / "staging", {repo: 1})
    out = tmp_path / "ckpt" / "step4"
    receipt = fetch_published_checkpoint(repo, 4, out, final_step=8, endpoint=hub.url)
    src = tmp_path / "staging" / repo / "4"
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert receipt["files"]["model.safetensors"]["sha256"]  # an LFS file: checked by sha256
    assert receipt["files"]["config.json"]["git-blob"]  # a small file: by git blob id
    assert json.loads((out / PUBLISHED_JSON).read_text())["revision"] == "step4"
    assert not (out / ".cache").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # loads like a trained checkpoint
    # the final step is main's twin by design, not a defect
    fetch_published_checkpoint(repo, 8, tmp_path / "ckpt" / "step8", final_step=8, endpoint=hub.url)


def test_branch_with_the_final_weights_is_refused(hub, tmp_path):
    repo = f"{ORG}/pythia-tiny-2.8b"
    _publish_suite(hub.api, tmp_path / "staging", {repo: 2}, bad={repo: 4})
    with pytest.raises(HubError, match=r"pythia-tiny-2\.8b@step4 serves the same weights as main"):
        fetch_published_checkpoint(repo, 4, tmp_path / "step4", final_step=8, endpoint=hub.url)
    assert not (tmp_path / "step4").exists()
    fetch_published_checkpoint(repo, 0, tmp_path / "step0", final_step=8, endpoint=hub.url)


def test_missing_step_repo_and_hash_mismatch(hub, tmp_path, monkeypatch):
    repo = f"{ORG}/pythia-tiny-70m"
    _publish_suite(hub.api, tmp_path / "staging", {repo: 1})
    with pytest.raises(HubError, match=r"has no branch step5: the step is not published"):
        fetch_published_checkpoint(repo, 5, tmp_path / "x", final_step=8, endpoint=hub.url)
    with pytest.raises(HubError, match=r"EleutherAI/pythia-nope: no such model repo"):
        fetch_published_checkpoint(
            f"{ORG}/pythia-nope", 4, tmp_path / "x", final_step=8, endpoint=hub.url
        )
    real = fetch_published.listed_hash
    monkeypatch.setattr(
        fetch_published, "listed_hash", lambda e: (real(e)[0], "0" * len(real(e)[1]))
    )  # the Hub lists other bytes than it serves
    with pytest.raises(HubError, match=r"differs from the 0+ the Hub lists; nothing was kept"):
        fetch_published_checkpoint(repo, 0, tmp_path / "x", final_step=None, endpoint=hub.url)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x*"))


@pytest.mark.workflow
def test_published_source_runs_to_a_figure(hub, tmp_path):
    """`--config checkpoints=published`: no training, no upload; the eval and the figure run on
    checkpoints fetched from the (stand-in) Hub."""
    cfg = without_case_studies(
        yaml.safe_load((REPO_ROOT / "tests" / "fixtures" / "ci.yaml").read_text())
    )
    cfg["run"] = "pub"
    cfg["models"] = {"tiny-70m": cfg["models"]["tiny-70m"]}
    cfg["training"].update(train_iters=8, checkpoints={"log_spaced": True, "every": 4})
    cfg["eval"].update(steps=[0, 4, 8], cloze_documents=10)
    cfg["checkpoints"] = {"org": ORG}
    repos = {f"{ORG}/pythia-tiny-70m": 1, f"{ORG}/pythia-tiny-70m-deduped": 2}
    _publish_suite(hub.api, tmp_path / "staging", repos)
    (tmp_path / "pub.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"))
    env.update(HF_HUB_OFFLINE="0", DS_ACCELERATOR="cpu")
    target = "results/pub/figures/lambada_over_training.png"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path / "wd"), "--cores", "2", "--show-failed-logs", target]
    cmd += ["--configfile", str(tmp_path / "pub.yaml"), "--config", "checkpoints=published"]
    plan = subprocess.run([*cmd, "-n"], capture_output=True, text=True, env=env, timeout=300)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    assert "fetch_published" in plan.stdout and "train_" not in plan.stdout
    assert "init_" not in plan.stdout and "upload" not in plan.stdout
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    run = tmp_path / "wd" / "results" / "pub"
    assert (run / "figures" / "lambada_over_training.png").stat().st_size > 0
    for variant, repo in (("standard", "pythia-tiny-70m"), ("deduped", "pythia-tiny-70m-deduped")):
        for step in (0, 4, 8):
            ckpt = run / "models" / variant / "tiny-70m" / f"step{step}"
            receipt = json.loads((ckpt / PUBLISHED_JSON).read_text())
            assert receipt["repo_id"] == f"{ORG}/{repo}" and receipt["step"] == step
            src = tmp_path / "staging" / ORG / repo / str(step) / "model.safetensors"
            assert (ckpt / "model.safetensors").read_bytes() == src.read_bytes()
            ev = json.loads(
                (run / "evals" / variant / "tiny-70m" / f"step{step}" / "0shot.json").read_text()
            )
            assert "lambada_cloze" in ev["results"]
            assert ev["checkpoint"]["commit"] == receipt["commit"]  # which release was scored
    shutil.rmtree(tmp_path / "staging")
