"""workflow.core.releases, download_release, merge_release: EleutherAI's released Pythia data,
downloaded through the real huggingface_hub client from minihub (a loopback Hub-API test double
that serves dataset repos with LFS metadata and HTTP Range requests), merged and checked."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from helpers_checkpoints import block_external_network, isolate_hf
from minihub import MiniHub

from workflow.core.config import without_case_studies
from workflow.core.releases import RELEASES, ReleaseError, release_for
from workflow.data.download_release import download_release_file
from workflow.data.indexed_dataset import MMapIndexedDataset, write_indexed_dataset
from workflow.data.merge_release import merge_shards, write_merge_meta
from workflow.data.pack_shuffle import pack_samples

SEQ = 16


def _byte_shards(path, n):
    """Split a file into n byte slices of odd sizes, as Pythia's shard_memmap.py does: the
    boundaries fall inside tokens."""
    data = path.read_bytes()
    cuts = [0, *sorted({len(data) * k // n + 1 for k in range(1, n)}), len(data)]
    return [data[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A small preshuffled sample file and a document file, as EleutherAI lays them out."""
    root = tmp_path_factory.mktemp("release")
    rng = np.random.default_rng(0)
    docs = [rng.integers(2, 500, rng.integers(1, 60)).tolist() + [0] for _ in range(80)]
    write_indexed_dataset(root / "docs", docs)
    pack_samples(root / "docs", root / "samples", seq_length=SEQ, num_samples=64, seed=1234)
    preshuffled = replace(RELEASES["pythia_preshuffled"], num_shards=3)
    idxmaps = replace(RELEASES["pythia_idxmaps"], num_shards=4, sha256={}, merged_sha256={})
    files = {}
    for release, prefix, variant in (
        (preshuffled, root / "samples", "deduped"),
        (idxmaps, root / "docs", "deduped"),
    ):
        repo_files = {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"}
        for name, data in zip(
            release.shard_names(),
            _byte_shards(prefix.with_suffix(".bin"), release.num_shards),
            strict=True,
        ):
            repo_files[name] = data
        repo_files[release.idx_name] = prefix.with_suffix(".idx").read_bytes()
        files[release.source] = (release, variant, repo_files, prefix)
    return files


@pytest.fixture
def hub(tmp_path, monkeypatch, released):
    from huggingface_hub import HfApi

    attempts = block_external_network(monkeypatch)
    with MiniHub(tmp_path / "hub") as h:
        isolate_hf(monkeypatch, tmp_path / "hf_home", offline=False, endpoint=h.url)
        api = HfApi(endpoint=h.url, token="test")
        for release, variant, repo_files, _ in released.values():
            repo = release.repo(variant)
            api.create_repo(repo, repo_type="dataset", exist_ok=True)
            up = tmp_path / "upload" / repo
            up.mkdir(parents=True)
            for name, data in repo_files.items():
                (up / name).write_bytes(data)
            api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=up)
        yield h
    assert attempts == [], f"tried to reach the network: {attempts}"


def _download_all(release, variant, out, url):
    return [download_release_file(release, variant, f, out, endpoint=url) for f in release.files()]


def test_preshuffled_download_merge_is_the_original_sample_file(hub, released, tmp_path):
    release, variant, files, prefix = released["pythia_preshuffled"]
    receipts = _download_all(release, variant, tmp_path / "dl", hub.url)
    assert [r["verified"] for r in receipts] == ["sha256 (Hub LFS)"] * 3 + ["git blob id (Hub)"]
    for r in receipts[:3]:
        assert r["hash"] == hashlib.sha256(files[r["file"]]).hexdigest()
    shards = [tmp_path / "dl" / f for f in release.shard_names()]
    expected = hashlib.sha256(prefix.with_suffix(".bin").read_bytes()).hexdigest()
    meta = merge_shards(
        shards,
        tmp_path / "dl" / release.idx_name,
        tmp_path / "samples",
        expected_sha256=expected,
        row_length=SEQ + 1,
    )
    assert (tmp_path / "samples.bin").read_bytes() == prefix.with_suffix(".bin").read_bytes()
    assert (tmp_path / "samples.idx").read_bytes() == prefix.with_suffix(".idx").read_bytes()
    ours = MMapIndexedDataset(prefix)
    tokens = ours.get_rows(0, len(ours))
    assert meta["sequences"] == 64 and meta["sha256"] == expected
    assert meta["eod_tokens"] == int((tokens == 0).sum()) > 0
    assert meta["padding_tokens"] == int((tokens == 1).sum())
    full = write_merge_meta(tmp_path / "samples", meta, {"seq_length": SEQ})
    assert (tmp_path / "samples.json").exists() and len(full["fingerprint"]) == 64


def test_idxmaps_merge_gives_the_documents_and_checks_the_merged_hash(hub, released, tmp_path):
    release, variant, _, prefix = released["pythia_idxmaps"]
    _download_all(release, variant, tmp_path / "dl", hub.url)
    shards = [tmp_path / "dl" / f for f in release.shard_names()]
    idx = tmp_path / "dl" / release.idx_name
    with pytest.raises(ReleaseError, match="merged sha256 .* differs from the published"):
        merge_shards(shards, idx, tmp_path / "documents", expected_sha256="0" * 64)
    assert not list(tmp_path.glob("documents*")) and not list(tmp_path.glob(".documents*"))
    meta = merge_shards(shards, idx, tmp_path / "documents")
    got, want = MMapIndexedDataset(tmp_path / "documents"), MMapIndexedDataset(prefix)
    assert meta["documents"] == 80 and [x.tolist() for x in got] == [x.tolist() for x in want]


def test_published_idxmaps_hashes_ship_with_the_library():
    release = RELEASES["pythia_idxmaps"]
    assert set(release.sha256) == set(release.files())  # 83 shards and the .idx
    assert release.shard_names()[-1] == "pile_0.87_deduped_text_document-00082-of-00082.bin"
    assert release.merged_sha256["deduped"].startswith("0cd548ef")
    assert RELEASES["pythia_preshuffled"].shard_names()[-1] == "document-00020-of-00020.bin"


def test_interrupted_download_resumes_with_a_range_request(hub, released, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # the client writes what it received in chunks of this size (10 MB by default) before the
    # connection drops; small chunks make a 726-byte shard behave like a 30 GB one
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64)
    release, variant, files, _ = released["pythia_preshuffled"]
    name = release.shard_names()[0]
    hub.cut_next_download(name, 300)
    try:
        receipt = download_release_file(release, variant, name, tmp_path / "dl", endpoint=hub.url)
    except Exception:  # the client gave up: the next call must resume, not restart
        receipt = download_release_file(release, variant, name, tmp_path / "dl", endpoint=hub.url)
    assert (tmp_path / "dl" / name).read_bytes() == files[name]
    assert receipt["hash"] == hashlib.sha256(files[name]).hexdigest()
    resumed = [r for f, r in hub.ranges if f == name and r]
    assert resumed and int(resumed[0][len("bytes=") : -1]) >= 256, hub.ranges


def test_hash_mismatch_deletes_the_file(hub, released, tmp_path):
    release, variant, _, _ = released["pythia_preshuffled"]
    name = release.shard_names()[1]
    bad = replace(release, sha256={name: "ab" * 32})
    with pytest.raises(ReleaseError, match=rf"{name}: sha256 \(published list\) mismatch"):
        download_release_file(bad, variant, name, tmp_path / "dl", endpoint=hub.url)
    assert not (tmp_path / "dl" / name).exists()


def test_missing_file_and_variant_are_clear_errors(hub, released, tmp_path):
    release, variant, _, _ = released["pythia_preshuffled"]
    with pytest.raises(ReleaseError, match=r"pile-deduped-pythia-preshuffled@main:nope.bin"):
        download_release_file(release, variant, "nope.bin", tmp_path, endpoint=hub.url)
    with pytest.raises(ReleaseError, match="has no 'standard' variant"):
        RELEASES["pythia_idxmaps"].repo("standard")


def test_merge_checks_rows_index_and_files(released, tmp_path):
    _, _, files, _ = released["pythia_preshuffled"]
    release = replace(RELEASES["pythia_preshuffled"], num_shards=3)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    shards = [tmp_path / n for n in release.shard_names()]
    idx = tmp_path / release.idx_name
    with pytest.raises(ReleaseError, match=r"row 0 has 17 tokens, training.seq_length \+ 1 = 2049"):
        merge_shards(shards, idx, tmp_path / "out", row_length=2049)
    with pytest.raises(ReleaseError, match="does not index the merged shards"):
        merge_shards(shards[:2], idx, tmp_path / "out")  # a shard left out
    with pytest.raises(ReleaseError, match="no such file"):
        merge_shards([tmp_path / "missing.bin"], idx, tmp_path / "out")
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_release_for_applies_config_overrides():
    r = release_for(
        {
            "source": "pythia_preshuffled",
            "release": {"repos": {"deduped": "me/mine"}, "num_shards": 2, "sha256": {"a": "AB"}},
        }
    )
    assert r.repos == {
        "standard": "EleutherAI/pile-standard-pythia-preshuffled",
        "deduped": "me/mine",
    }
    assert r.shard_names() == ["document-00000-of-00001.bin", "document-00001-of-00001.bin"]
    assert r.sha256 == {"a": "ab"}
    with pytest.raises(ReleaseError, match="not a released dataset"):
        release_for({"source": "generated"})


# --- the Snakemake rules: download -> merge -> (pack_shuffle) on a real snakemake run ------

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _release_config(tmp_path, source, release):
    import yaml

    cfg = without_case_studies(
        yaml.safe_load((REPO_ROOT / "tests" / "fixtures" / "ci.yaml").read_text())
    )
    cfg["run"] = source
    cfg["variants"] = ["deduped"]
    cfg["data"] = {
        "source": source,
        "release": {"num_shards": release.num_shards},
        "tokenizer": {"kind": "pretrained"},
    }
    # 16 steps x 4 = 64 rows of SEQ + 1 tokens: the released sample file has exactly that many
    cfg["training"].update(seq_length=SEQ, global_batch_size=4, train_iters=16)
    cfg["eval"]["tasks"] = ["lambada_openai"]
    path = tmp_path / f"{source}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake(tmp_path, configfile, hub_url, *args):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_ENDPOINT=hub_url, HF_HOME=str(tmp_path / "hf_home"))
    env["HF_HUB_OFFLINE"] = "0"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp_path / "wd"), *args, "--configfile", str(configfile)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.workflow
def test_preshuffled_source_runs_in_snakemake(hub, released, tmp_path):
    release, _, _, prefix = released["pythia_preshuffled"]
    cfg = _release_config(tmp_path, "pythia_preshuffled", release)
    target = "results/pythia_preshuffled/data/deduped/samples.bin"
    proc = _snakemake(tmp_path, cfg, hub.url, "--cores", "2", "--show-failed-logs", target)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = tmp_path / "wd" / "results" / "pythia_preshuffled" / "data" / "deduped"
    assert (out / "samples.bin").read_bytes() == prefix.with_suffix(".bin").read_bytes()
    meta = __import__("json").loads((out / "samples.json").read_text())
    assert meta["repo"] == "EleutherAI/pile-deduped-pythia-preshuffled"
    assert meta["num_samples"] == 64 and meta["eod_tokens"] > 0
    # the full DAG plans training straight from the released samples: no tokenize/dedup/pack
    plan = _snakemake(tmp_path, cfg, hub.url, "-n", "--quiet", "rules")
    assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-4000:]
    for absent in ("tokenize", "dedup", "pack_shuffle", "corpus", "download_release"):
        assert f"\n{absent} " not in plan.stdout
    assert "train_" in plan.stdout and "tokenizer" in plan.stdout


@pytest.mark.workflow
def test_idxmaps_source_runs_in_snakemake(hub, released, tmp_path):
    release, _, _, prefix = released["pythia_idxmaps"]
    cfg = _release_config(tmp_path, "pythia_idxmaps", release)
    # our stand-in's .idx is not EleutherAI's: its published sha256 would (rightly) refuse it
    fake_idx = hashlib.sha256(prefix.with_suffix(".idx").read_bytes()).hexdigest()
    merged = hashlib.sha256(prefix.with_suffix(".bin").read_bytes()).hexdigest()
    text = cfg.read_text().replace(
        "num_shards: 4",
        f"num_shards: 4\n    sha256: {{{release.idx_name}: {fake_idx}}}"
        f"\n    merged_sha256: {{deduped: {merged}}}",
    )
    cfg.write_text(text)
    target = "results/pythia_idxmaps/data/deduped/samples.bin"
    proc = _snakemake(tmp_path, cfg, hub.url, "--cores", "2", "--show-failed-logs", target)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = tmp_path / "wd" / "results" / "pythia_idxmaps" / "data" / "deduped"
    docs = MMapIndexedDataset(data / "documents")
    assert [x.tolist() for x in docs] == [x.tolist() for x in MMapIndexedDataset(prefix)]
    rebuilt = tmp_path / "rebuilt"
    pack_samples(prefix, rebuilt, seq_length=SEQ, num_samples=65, seed=1234)
    assert (data / "samples.bin").read_bytes() == rebuilt.with_suffix(".bin").read_bytes()
