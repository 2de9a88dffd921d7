"""workflow.hub (upload, local_git, huggingface, download, push): Pythia's checkpoint layout
(repo per model, branch step{N}, main = final step).

local_git is tested directly; the huggingface backend through the real huggingface_hub and
transformers clients against minihub, a loopback Hub-API test double (tests/minihub.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor

import pytest
from helpers_checkpoints import block_external_network, isolate_hf, make_checkpoint
from minihub import MiniHub

from workflow.hub.download import download_checkpoint
from workflow.hub.layout import HubError, checkpoint_files, repo_id_for
from workflow.hub.local_git import list_branches, local_repo_path
from workflow.hub.upload import ReceiptMismatch, publish_checkpoint, verify_receipt

REPO = "pythia-workflow/pythia-tiny-70m"
PUBLISHED = [
    "README.md",  # the generated model card
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "pythia_checkpoint.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch):
    attempts = block_external_network(monkeypatch)
    yield attempts
    assert attempts == [], f"tried to reach the network: {attempts}"


@pytest.fixture(scope="module")
def hubeval_ckpts(tmp_path_factory):
    """Tiny checkpoints for steps 0, 1, 2, 4, 8 (different weights each)."""
    root = tmp_path_factory.mktemp("ckpts")
    return {s: make_checkpoint(root / f"step{s}", s, seed=s) for s in (0, 1, 2, 4, 8)}


def test_repo_id_for():
    assert repo_id_for("EleutherAI", "pythia-{size}{suffix}", "70m", "standard") == (
        "EleutherAI/pythia-70m"
    )
    assert repo_id_for("EleutherAI", "pythia-{size}{suffix}", "1.4b", "deduped") == (
        "EleutherAI/pythia-1.4b-deduped"
    )
    with pytest.raises(ValueError, match="unknown variant 'dedup'"):
        repo_id_for("o", "pythia-{size}{suffix}", "70m", "dedup")
    with pytest.raises(ValueError, match=r"may only use \{size\} and \{suffix\}"):
        repo_id_for("o", "pythia-{model}", "70m", "standard")


def test_checkpoint_files_skip_deepspeed(hubeval_ckpts):
    assert (hubeval_ckpts[8] / "deepspeed").is_dir()
    assert checkpoint_files(hubeval_ckpts[8]) == [f for f in PUBLISHED if f != "README.md"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        checkpoint_files(hubeval_ckpts[8] / "nowhere")


def test_local_git_round_trip_and_determinism(hubeval_ckpts, tmp_path):
    ckpt = hubeval_ckpts[8]
    kw = dict(repo_id=REPO, branch="step8", backend="local_git")
    receipt = publish_checkpoint(ckpt, local_root=tmp_path / "hub", **kw)
    assert receipt["step"] == 8 and sorted(receipt["files"]) == PUBLISHED
    assert receipt["url_or_path"] == str(local_repo_path(tmp_path / "hub", REPO))
    json.dumps(receipt)  # serialisable as written by the rule
    # identical files -> the same commit, in this repo and in a fresh one
    again = publish_checkpoint(ckpt, local_root=tmp_path / "hub", **kw)
    fresh = publish_checkpoint(ckpt, local_root=tmp_path / "other", **kw)
    assert receipt["commit"] == again["commit"] == fresh["commit"]
    assert list_branches(tmp_path / "hub", REPO) == {
        "main": receipt["commit"],
        "step8": receipt["commit"],
    }

    out = download_checkpoint(
        repo_id=REPO,
        revision="step8",
        backend="local_git",
        out_dir=tmp_path / "dl",
        local_root=tmp_path / "hub",
    )
    assert sorted(os.listdir(out)) == PUBLISHED  # no deepspeed/ on the hub
    verify_receipt(receipt, out, allow_extra=False)
    assert receipt["bytes"] == sum((out / f).stat().st_size for f in PUBLISHED)
    card = (out / "README.md").read_text()
    assert 'from_pretrained("pythia-workflow/pythia-tiny-70m", revision="step8")' in card
    assert "| step | 8 |" in card
    with pytest.raises(HubError, match="has no revision 'step9'"):
        download_checkpoint(
            repo_id=REPO,
            revision="step9",
            backend="local_git",
            out_dir=tmp_path / "dl9",
            local_root=tmp_path / "hub",
        )
    assert not (tmp_path / "dl9").exists()


def test_local_git_stores_checkpoint_files_uncompressed(hubeval_ckpts, tmp_path):
    """Weights are stored as the Hub's LFS stores them (zlib level 0: header 78 01), and git
    itself still reads and verifies the repository."""
    import zlib

    ckpt = hubeval_ckpts[4]
    publish_checkpoint(
        ckpt, repo_id=REPO, branch="step4", backend="local_git", local_root=tmp_path / "hub"
    )
    repo = local_repo_path(tmp_path / "hub", REPO)
    git = ["git", "--git-dir", str(repo)]
    oid = subprocess.run(
        [*git, "rev-parse", "step4:model.safetensors"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stored = (repo / "objects" / oid[:2] / oid[2:]).read_bytes()
    weights = (ckpt / "model.safetensors").read_bytes()
    assert stored[:2] == b"\x78\x01"  # zlib, no compression
    assert len(stored) > len(weights)
    assert zlib.decompress(stored).split(b"\0", 1)[1] == weights
    subprocess.run([*git, "fsck", "--strict", "--no-dangling"], capture_output=True, check=True)


def test_tampered_checkpoint_is_detected(hubeval_ckpts, tmp_path):
    root = tmp_path / "hub"
    r0 = publish_checkpoint(
        hubeval_ckpts[0], repo_id=REPO, branch="step0", backend="local_git", local_root=root
    )
    r8 = publish_checkpoint(
        hubeval_ckpts[8], repo_id=REPO, branch="step8", backend="local_git", local_root=root
    )
    out = download_checkpoint(
        repo_id=REPO,
        revision="step8",
        backend="local_git",
        out_dir=tmp_path / "dl",
        local_root=root,
    )
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ReceiptMismatch, match=r"model\.safetensors: sha256") as err:
        verify_receipt(r8, out)
    assert "config.json" not in str(err.value)
    # pythia#205: a branch serving another step's weights fails its receipt
    step0 = download_checkpoint(
        repo_id=REPO,
        revision="step0",
        backend="local_git",
        out_dir=tmp_path / "s0",
        local_root=root,
    )
    with pytest.raises(ReceiptMismatch, match="model.safetensors"):
        verify_receipt(r8, step0)
    verify_receipt(r0, step0)
    os.remove(step0 / "tokenizer.json")
    with pytest.raises(ReceiptMismatch, match="tokenizer.json: missing"):
        verify_receipt(r0, step0)


def test_main_tracks_highest_step(hubeval_ckpts, tmp_path):
    root = tmp_path / "hub"
    receipts = {}
    for step in (4, 8, 2):  # out of order: main must stay at 8
        receipts[step] = publish_checkpoint(
            hubeval_ckpts[step],
            repo_id=REPO,
            branch=f"step{step}",
            backend="local_git",
            local_root=root,
        )
        branches = list_branches(root, REPO)
        assert branches["main"] == receipts[max(receipts)]["commit"]
    assert set(branches) == {"main", "step2", "step4", "step8"}


def test_parallel_publishing_from_four_processes(hubeval_ckpts, tmp_path):
    root = tmp_path / "hub"  # does not exist yet: the processes also race to create the repo
    steps = [0, 1, 2, 4]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        futures = {
            s: pool.submit(
                publish_checkpoint,
                str(hubeval_ckpts[s]),
                repo_id=REPO,
                branch=f"step{s}",
                backend="local_git",
                local_root=str(root),
            )
            for s in steps
        }
        receipts = {s: f.result() for s, f in futures.items()}
    branches = list_branches(root, REPO)
    assert branches == {
        "main": receipts[4]["commit"],
        **{f"step{s}": receipts[s]["commit"] for s in steps},
    }
    repo = local_repo_path(root, REPO)
    fsck = subprocess.run(["git", "--git-dir", str(repo), "fsck", "--strict"], capture_output=True)
    assert fsck.returncode == 0, fsck.stderr.decode()
    for s in steps:
        out = download_checkpoint(
            repo_id=REPO,
            revision=f"step{s}",
            backend="local_git",
            out_dir=tmp_path / f"dl{s}",
            local_root=root,
        )
        verify_receipt(receipts[s], out, allow_extra=False)


# ---------------------------------------------------------------------- huggingface backend


@pytest.fixture
def hubeval_minihub(tmp_path, monkeypatch):
    with MiniHub(tmp_path / "minihub") as hub:
        isolate_hf(monkeypatch, tmp_path / "hf_home", offline=False, endpoint=hub.url)
        yield hub


def _hf_publish(ckpt, step, hub, final=False):
    return publish_checkpoint(
        ckpt,
        repo_id=REPO,
        branch=f"step{step}",
        backend="huggingface",
        endpoint=hub.url,
        token="minihub-test",
        final=final,
    )


def test_huggingface_backend_round_trip(hubeval_ckpts, hubeval_minihub, tmp_path):
    import torch
    from huggingface_hub import HfApi
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub = hubeval_minihub
    receipts = {s: _hf_publish(hubeval_ckpts[s], s, hub, final=s == 8) for s in (0, 8)}
    assert receipts[8]["url_or_path"] == f"{hub.url}/{REPO}/tree/step8"
    refs = {b.name: b.target_commit for b in HfApi(endpoint=hub.url).list_repo_refs(REPO).branches}
    assert refs["step0"] == receipts[0]["commit"] and refs["step8"] == receipts[8]["commit"]
    # Pythia: main serves the final step
    assert refs["main"] == receipts[8]["main_commit"] and "main_commit" not in receipts[0]
    main_files = HfApi(endpoint=hub.url).list_repo_files(REPO, revision="main")
    assert "model.safetensors" in main_files
    files = HfApi(endpoint=hub.url).list_repo_files(REPO, revision="step8")
    assert not any(f.startswith("deepspeed/") for f in files)

    out = download_checkpoint(
        repo_id=REPO,
        revision="step8",
        backend="huggingface",
        out_dir=tmp_path / "dl",
        endpoint=hub.url,
    )
    assert sorted(os.listdir(out)) == PUBLISHED  # snapshot_download's .cache/ removed
    verify_receipt(receipts[8], out, allow_extra=False)
    with pytest.raises(ReceiptMismatch):
        verify_receipt(receipts[0], out)

    # the real transformers client, by revision (uses HF_ENDPOINT = minihub)
    model = AutoModelForCausalLM.from_pretrained(REPO, revision="step8")
    local = AutoModelForCausalLM.from_pretrained(hubeval_ckpts[8])
    for (name, a), (_, b) in zip(
        model.state_dict().items(), local.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    tok = AutoTokenizer.from_pretrained(REPO, revision="step8")
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|padding|>"
    with pytest.raises(HubError, match="has no revision 'step9'"):
        download_checkpoint(
            repo_id=REPO,
            revision="step9",
            backend="huggingface",
            out_dir=tmp_path / "dl9",
            endpoint=hub.url,
        )
    assert any("/commit/step8" in r for r in hub.requests)


def test_local_git_repo_is_served_over_the_hub_api(hubeval_ckpts, hubeval_minihub, tmp_path):
    """A local_git repo has the Hub's branch layout: minihub (or olah) can serve it unchanged."""
    from transformers import AutoConfig

    root = tmp_path / "hub"
    receipt = publish_checkpoint(
        hubeval_ckpts[4], repo_id=REPO, branch="step4", backend="local_git", local_root=root
    )
    served = hubeval_minihub.repo_path(REPO)
    os.makedirs(os.path.dirname(served))
    shutil.copytree(local_repo_path(root, REPO), served)
    cfg = AutoConfig.from_pretrained(REPO, revision="step4")
    assert cfg.hidden_size == 32
    out = download_checkpoint(
        repo_id=REPO,
        revision="main",
        backend="huggingface",
        out_dir=tmp_path / "dl",
        endpoint=hubeval_minihub.url,
    )
    verify_receipt(receipt, out, allow_extra=False)


def test_huggingface_backend_refuses_offline_mode(hubeval_ckpts, hubeval_minihub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        _hf_publish(hubeval_ckpts[0], 0, hubeval_minihub)


# --- idempotency, refusal, retries, tokens --------------------------------------------------


def test_republishing_is_skipped_and_changed_content_refused(hubeval_ckpts, tmp_path):
    root = tmp_path / "hub"
    kw = dict(repo_id=REPO, branch="step4", backend="local_git", local_root=root)
    first = publish_checkpoint(hubeval_ckpts[4], **kw)
    assert publish_checkpoint(hubeval_ckpts[4], **kw)["commit"] == first["commit"]
    with pytest.raises(HubError, match=r"step4 is already published with other content \(.*model"):
        publish_checkpoint(hubeval_ckpts[8], **kw)  # other weights under the same step
    assert list_branches(root, REPO)["step4"] == first["commit"]
    forced = publish_checkpoint(hubeval_ckpts[8], force=True, **kw)
    assert forced["commit"] != first["commit"]


def test_huggingface_skip_refuse_and_force(hubeval_ckpts, hubeval_minihub):
    hub = hubeval_minihub
    first = _hf_publish(hubeval_ckpts[4], 4, hub)
    commits = sum("/commit/" in r for r in hub.requests)
    again = _hf_publish(hubeval_ckpts[4], 4, hub)  # same bytes: verified by hash, no commit
    assert again["commit"] == first["commit"]
    assert sum("/commit/" in r for r in hub.requests) == commits
    with pytest.raises(HubError, match=r"step4 is already published with other content"):
        _hf_publish(hubeval_ckpts[8], 4, hub)
    forced = publish_checkpoint(
        hubeval_ckpts[8],
        repo_id=REPO,
        branch="step4",
        backend="huggingface",
        endpoint=hub.url,
        token="minihub-test",
        force=True,
    )
    assert forced["commit"] != first["commit"]


def test_rate_limits_and_server_errors_are_retried(hubeval_ckpts, hubeval_minihub):
    hub = hubeval_minihub
    hub.server.fail_next += [("POST", r"/commit/", 429), ("POST", r"/commit/", 503)]
    receipt = _hf_publish(hubeval_ckpts[2], 2, hub)
    assert sum("/commit/" in r for r in hub.requests) == 3  # 429, 503, then the commit
    assert receipt["commit"] and hub.server.fail_next == []


def test_token_missing_invalid_or_not_allowed(hubeval_ckpts, hubeval_minihub, monkeypatch, caplog):
    import logging

    hub = hubeval_minihub
    secret = "hf_SECRETsecretSECRET0123456789"
    hub.server.valid_tokens.add(secret)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    kw = dict(repo_id=REPO, branch="step2", backend="huggingface", endpoint=hub.url)
    with pytest.raises(HubError, match="no Hugging Face token: set HF_TOKEN"):
        publish_checkpoint(hubeval_ckpts[2], **kw)
    with pytest.raises(HubError, match=r"token was rejected .* \(HTTP 401\)") as err:
        publish_checkpoint(hubeval_ckpts[2], token="hf_wrongWRONGwrong", **kw)
    assert "hf_wrong" not in str(err.value)
    assert not any("/repos/create" in r for r in hub.requests)  # refused before any upload work
    hub.server.forbidden_orgs.add("pythia-workflow")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubError, match=r"the token cannot write this repo \(HTTP 403\)") as err:
        publish_checkpoint(hubeval_ckpts[2], token=secret, **kw)
    hub.server.forbidden_orgs.clear()
    receipt = publish_checkpoint(hubeval_ckpts[2], token=secret, **kw)
    assert secret not in str(err.value) and secret not in json.dumps(receipt)
    assert secret not in caplog.text


def _upload_job(raw: dict, size: str, step: int):
    """The upload job (one a training segment) that publishes `step` of `size`."""
    from workflow.core.config import validate_config
    from workflow.plan.jobs import SuiteJobs

    jobs = SuiteJobs.from_config(validate_config(raw)).uploads
    return next(u for u in jobs if u.size == size and step in u.steps)


@pytest.mark.workflow
def test_upload_rule_never_writes_the_token(hubeval_ckpts, hubeval_minihub, tmp_path):
    """HF_TOKEN reaches the upload job through the environment only: not the log, the receipt,
    the config dump or the Snakemake metadata."""
    import subprocess
    import sys

    import yaml

    secret = "hf_NEVERinLOGSneverINlogs0123456789"
    hub = hubeval_minihub
    hub.server.valid_tokens.add(secret)
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = yaml.safe_load(open(os.path.join(repo_root, "tests", "fixtures", "ci.yaml")))
    cfg["run"] = "tok"
    cfg["hub"] = {"backend": "huggingface", "org": "tok-org", "endpoint": hub.url}
    (tmp_path / "tok.yaml").write_text(yaml.safe_dump(cfg))
    job = _upload_job(cfg, "tiny-70m", 16)
    for step in job.steps:  # the job publishes its segment's scheduled steps: any checkpoint
        ckpt = tmp_path / "wd" / "results" / "tok" / "models" / "standard" / "tiny-70m"
        shutil.copytree(hubeval_ckpts[8], ckpt / f"step{step}")
    env = dict(os.environ, HF_TOKEN=secret, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"))
    (target,) = job.outputs()  # results/tok/hub/standard/tiny-70m/steps{first}-16.json
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", os.path.join(repo_root, "Snakefile")]
    cmd += [
        "--directory",
        str(tmp_path / "wd"),
        "--cores",
        "1",
        target,
        "--allowed-rules",
        job.rule,
    ]
    cmd += ["--configfile", str(tmp_path / "tok.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert secret not in proc.stdout + proc.stderr
    for path in (tmp_path / "wd").rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert secret.encode() not in path.read_bytes(), path
    receipt = json.loads((tmp_path / "wd" / target).read_text())
    assert receipt["repo_id"] == "tok-org/pythia-tiny-70m" and receipt["steps"] == list(job.steps)
    assert [r["branch"] for r in receipt["receipts"]] == [f"step{s}" for s in job.steps]


def test_push_local_hub_to_the_hub(hubeval_ckpts, hubeval_minihub, tmp_path, monkeypatch, capsys):
    from huggingface_hub import HfApi

    from workflow.hub.push import main

    root = tmp_path / "local"
    for s in (0, 4, 8):
        publish_checkpoint(
            hubeval_ckpts[s], repo_id=REPO, branch=f"step{s}", backend="local_git", local_root=root
        )
    monkeypatch.setenv("HF_TOKEN", "minihub-test")
    argv = ["push", "--local-root", str(root), "--repo", REPO, "--to-org", "mine"]
    argv += ["--endpoint", hubeval_minihub.url]
    assert main(argv) == 0
    assert "-> mine/pythia-tiny-70m: 3 steps" in capsys.readouterr().out
    api = HfApi(endpoint=hubeval_minihub.url)
    refs = {b.name: b.target_commit for b in api.list_repo_refs("mine/pythia-tiny-70m").branches}
    assert {"step0", "step4", "step8", "main"} <= set(refs)
    out = download_checkpoint(
        repo_id="mine/pythia-tiny-70m",
        revision="main",
        backend="huggingface",
        out_dir=tmp_path / "main",
        endpoint=hubeval_minihub.url,
    )
    src = hubeval_ckpts[8] / "model.safetensors"
    assert (out / "model.safetensors").read_bytes() == src.read_bytes()
    assert (
        'from_pretrained("mine/pythia-tiny-70m", revision="step8")'
        in (out / "README.md").read_text()
    )
    commits = sum("/commit/" in r for r in hubeval_minihub.requests)
    assert main(argv) == 0  # again: every step verified by hash and skipped
    assert sum("/commit/" in r for r in hubeval_minihub.requests) == commits


def test_the_model_card_links_the_project_only_when_configured(tmp_path):
    from workflow.hub.model_card import model_card

    ckpt = make_checkpoint(tmp_path / "step8", 8)
    plain = model_card(ckpt, REPO, "step8", 8)
    assert "trained with pythia-workflow." in plain
    assert "https://github.com/)" not in plain and "](http" not in plain
    linked = model_card(ckpt, REPO, "step8", 8, "https://example.org/lab/pythia-workflow")
    assert "[pythia-workflow](https://example.org/lab/pythia-workflow)" in linked


def test_a_project_url_must_be_a_url():
    import yaml

    from workflow.core.config import ConfigError, validate_config

    raw = yaml.safe_load(open("config/config.yaml"))
    raw["hub"] = {"project_url": "github.com/me"}
    with pytest.raises(ConfigError, match=r"hub\.project_url"):
        validate_config(raw)
