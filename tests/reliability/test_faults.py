"""Cases 2-5 and 7 on copies of the reliability suite's finished run (conftest.py):
corrupted artifacts, a full disk during a checkpoint save, a config changed between runs, two
Snakemakes on one results directory, and the Hub token never written anywhere."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest
import yaml
from conftest import RUN, SIZE, TARGETS, TOKEN, VARIANT, ok

from workflow.core.checkpoint import CHECKPOINT_JSON, published_files
from workflow.core.io import ArtifactError, read_checked_json, write_checked_json
from workflow.eval.eval_table import collect_evals
from workflow.eval.evaluate import check_checkpoint
from workflow.hub.layout import MODEL_CARD, checkpoint_files
from workflow.hub.model_card import model_card
from workflow.hub.upload import publish_checkpoint
from workflow.train.checkpoint import check_resume
from workflow.train.data import check_samples

M = f"{RUN}/models/{VARIANT}/{SIZE}"
E = f"{RUN}/evals/{VARIANT}/{SIZE}"
TRAIN_RULE = "train_tiny_70m_0_8"
EVAL_RULE = "evaluate_tiny_70m_0_8"
UPLOAD_RULE = "upload_tiny_70m_0_8"


def _flip_byte(path, offset=None):
    """Change one byte in place, keeping size and mtime (bit rot, not an edit Snakemake sees)."""
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _truncate(path, keep):
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.truncate(keep)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _error_line(proc, needle):
    """The one line of Snakemake's output that carries the library's error."""
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if needle in line]
    assert proc.returncode != 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return lines[-1]


# --------------------------------------------------------------------------- 2. corruption


def test_corrupted_samples_bin_is_refused_before_training(copy):
    _flip_byte(copy.run / "data/standard/samples.bin")
    proc = copy.snakemake(f"{M}/step8", "--forcerun", TRAIN_RULE)
    line = _error_line(proc, "samples.bin has other bytes than when it was written")
    assert "rule pack_shuffle" in line and "samples.json" in line
    assert "step 1 " not in (copy.run / "logs/train/standard/tiny-70m/segment0-8.log").read_text()


def test_truncated_samples_bin_is_refused(copy):
    prefix = copy.run / "data/standard/samples"
    _truncate(prefix.with_suffix(".bin"), 100)
    with pytest.raises(ArtifactError, match=r"samples\.bin has 100 bytes, \d+ when it was writ"):
        check_samples(prefix)


def test_corrupted_checkpoint_weights_are_refused_by_eval(copy):
    _flip_byte(copy.run / "models/standard/tiny-70m/step8/model.safetensors")
    proc = copy.snakemake(f"{E}/step8/0shot.json", "--forcerun", EVAL_RULE)
    line = _error_line(proc, "model.safetensors has other bytes")
    assert f"rule {TRAIN_RULE}" in line and "pythia_checkpoint.json" in line


def test_truncated_checkpoint_state_is_refused_on_resume(copy):
    ckpt = copy.run / "models/standard/tiny-70m/step8"
    _truncate(ckpt / "deepspeed/state/mp_rank_00_model_states.pt", 1000)
    meta = json.loads((ckpt / "pythia_checkpoint.json").read_text())
    with pytest.raises(ArtifactError, match=f"model_states.pt has 1000 bytes.*{TRAIN_RULE}"):
        check_resume(
            ckpt,
            step=8,
            data_fp=meta["data_fingerprint"],
            cfg_hash=meta["config_hash"],
            world_size=1,
            zero_stage=0,
            variant=VARIANT,
            size=SIZE,
        )


def test_a_published_copy_without_training_state_passes_the_check(baseline, tmp_path):
    """The digests cover deepspeed/ too (checked on resume); a Hub copy has none of it. The eval's
    check passes on such a copy having verified every file it has against the training record,
    and still refuses the copy once its weights change."""
    wd, _ = baseline
    _check_published_copy(wd.path / M / "step8", tmp_path / "step8")


def _check_published_copy(ckpt, copy):
    """`copy`: what either hub backend publishes of `ckpt` (its checkpoint_files and a card)."""
    record = json.loads((ckpt / CHECKPOINT_JSON).read_text())
    # the record holds digests of the training state and of the weights: both are to be told apart
    assert any(name.startswith("deepspeed/") for name in record["files"])
    assert "model.safetensors" in record["files"]
    for name in checkpoint_files(ckpt):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ckpt / name, copy / name)
    (copy / MODEL_CARD).write_text(model_card(ckpt, "rel-org/x", "step8", 8))
    assert not (copy / "deepspeed").exists()
    # every file of the copy has a digest the check verifies, but the record and the card
    unrecorded = {CHECKPOINT_JSON, MODEL_CARD}
    assert set(published_files(record)) == set(checkpoint_files(copy)) - unrecorded
    check_checkpoint(copy)
    _flip_byte(copy / "model.safetensors")
    with pytest.raises(ArtifactError, match=f"safetensors has other bytes.*rule {TRAIN_RULE}"):
        check_checkpoint(copy)


def test_corrupted_checkpoint_is_never_uploaded(copy, tmp_path):
    ckpt = copy.run / "models/standard/tiny-70m/step8"
    _flip_byte(ckpt / "model.safetensors")
    with pytest.raises(ArtifactError, match=f"safetensors has other bytes.*rule {TRAIN_RULE}"):
        publish_checkpoint(
            ckpt, repo_id="rel-org/x", branch="step8", backend="local_git", local_root=tmp_path
        )
    assert not list(tmp_path.rglob("refs/heads/step8"))


def test_edited_eval_json_is_refused_by_the_table(copy):
    path = copy.run / "evals/standard/tiny-70m/step8/0shot.json"
    st = os.stat(path)
    data = json.loads(path.read_text())
    data["results"]["piqa_style"]["acc"] = 0.99  # still valid JSON, plausible value
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = copy.snakemake(f"{RUN}/tables/evals.csv", "--forcerun", "eval_table")
    line = _error_line(proc, "does not match the sha256 written with it")
    assert "step8/0shot.json" in line and f"rule {EVAL_RULE}" in line


def test_truncated_eval_json_names_the_file(copy):
    path = copy.run / "evals/standard/tiny-70m/step0/0shot.json"
    _truncate(path, 40)
    with pytest.raises(ArtifactError, match=r"step0/0shot\.json: unreadable JSON .*--forcerun"):
        collect_evals([path])


# --------------------------------------------------------------------------- 3. disk full


def test_disk_full_during_checkpoint_save_leaves_nothing_usable(copy, baseline):
    """ENOSPC while the step-4 checkpoint of segment (0, 8] is written (the first checkpoint
    file of the segment's job): the job fails, no checkpoint directory or partial directory is
    left, later rules plan to retrain, and the retry gives the uninterrupted run's weights."""
    proc = copy.snakemake(f"{M}/step8", "--forcerun", TRAIN_RULE, fault="enospc:pythia_checkp*")
    _error_line(proc, "No space left on device")
    models = copy.run / "models/standard/tiny-70m"
    assert not (models / "step4").exists() and not (models / "step8").exists()
    assert not list(models.glob(".*")), list(models.glob(".*"))  # no .step4.partial, no temps
    plan = copy.snakemake(f"{E}/step8/0shot.json", "--forcerun", EVAL_RULE, "-n")
    ok(plan)
    assert TRAIN_RULE in plan.stdout
    ok(copy.snakemake(f"{M}/step8"))
    base, _ = baseline
    for s in (4, 8):
        weights = f"models/standard/tiny-70m/step{s}/model.safetensors"
        assert (copy.run / weights).read_bytes() == (base.run / weights).read_bytes()


# --------------------------------------------------------------------------- 4. config change


def _changed_config(copy, tmp_path, edit):
    cfg = yaml.safe_load(copy.config.read_text())
    edit(cfg)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "what, edit, first_rule",
    [
        ("learning rate", lambda c: c["models"]["tiny-70m"].update(lr=2.0e-2), TRAIN_RULE),
        ("seed", lambda c: c["training"].update(seed=99), "pack_shuffle"),
        ("data source", lambda c: c["data"]["generator"].update(seed=12), "corpus"),
    ],
)
def test_config_change_reruns_everything_downstream(copy, tmp_path, what, edit, first_rule):
    """A dry run under the changed config plans the stage the change enters at and every stage
    after it up to the tables: no old checkpoint or result survives into a new table."""
    assert "Nothing to be done" in copy.snakemake(*TARGETS, "-n").stdout
    proc = copy.snakemake(*TARGETS, "-n", config=_changed_config(copy, tmp_path, edit))
    ok(proc)
    for rule in (first_rule, TRAIN_RULE, EVAL_RULE, "eval_table", "score_table", UPLOAD_RULE):
        assert rule in proc.stdout, f"{what} changed but {rule} would not rerun:\n{proc.stdout}"


def test_a_table_never_mixes_two_configs(tmp_path):
    """The guard behind the reruns: eval results of one model from two configs (or of one
    variant from two sample files) are refused by the table, naming both files."""
    paths = []
    for step, cfg_hash in ((0, "a" * 64), (8, "b" * 64)):
        path = tmp_path / f"evals/standard/tiny-70m/step{step}/0shot.json"
        path.parent.mkdir(parents=True)
        ckpt = {"data_fingerprint": "d" * 64, "config_hash": cfg_hash}
        write_checked_json(path, {"results": {"t": {"acc": 0.5}}, "checkpoint": ckpt})
        paths.append(path)
    assert read_checked_json(paths[0])["checkpoint"]["config_hash"] == "a" * 64
    with pytest.raises(ValueError, match=r"step8/0shot.json .* config_hash bbbbbbbbbbbb, but .*st"):
        collect_evals(paths)


# --------------------------------------------------------------------------- 5. lock


def test_second_snakemake_on_the_same_results_is_refused(copy):
    first = copy.popen(f"{M}/step8", "--forcerun", TRAIN_RULE)
    try:
        locks = copy.path / ".snakemake" / "locks"
        deadline = time.time() + 120
        # Snakemake writes the input lock, then the output lock: wait for the output lock to
        # hold the checkpoint (stopped in between, the first run would lock no output yet)
        while not any(f"{M}/step8" in p.read_text() for p in locks.glob("*.output.lock")):
            assert first.poll() is None and time.time() < deadline, "first run never locked"
            time.sleep(0.02)
        # freeze the first run while it holds the lock (no race with its end on a busy machine)
        os.killpg(first.pid, signal.SIGSTOP)
        second = copy.snakemake(f"{RUN}/tables/evals.csv", "--forcerun", "eval_table")
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


# --------------------------------------------------------------------------- 7. secrets


def test_hub_token_is_nowhere_after_a_run_that_uploads(baseline, minihub):
    """HF_TOKEN was set to a marker for the whole baseline run, whose upload jobs pushed every
    checkpoint to minihub with it: the marker is in no file of the working directory (results,
    logs, receipts, Snakemake's metadata and logs) and not on the console."""
    wd, console = baseline
    assert TOKEN not in console
    pushed = [r for r in minihub.requests if "/commit/" in r]
    assert pushed, "the baseline uploaded nothing: the token was never used"
    scanned = 0
    for path in wd.path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
            scanned += 1
    job = json.loads((wd.run / "hub/standard/tiny-70m/steps0-8.json").read_text())
    receipt = job["receipts"][-1]
    assert receipt["backend"] == "huggingface" and receipt["step"] == 8 and scanned > 100
    # and what was published is the checkpoint, not Snakemake's directory marker
    assert "model.safetensors" in receipt["files"]
    assert ".snakemake_timestamp" not in receipt["files"]
