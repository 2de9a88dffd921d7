"""Case 1: SIGKILL of each kind of job while it writes its outputs (the job and its Snakemake die
together, as on a dead node), then what a user does: --unlock, rerun with --rerun-incomplete.
The rerun must give exactly the uninterrupted run's files.

The kill comes from the library's fault hook (PYTHIA_WORKFLOW_FAULT=kill:<file name>, see
workflow/io.fault_point) at the worst moment: the named output is complete under its temporary
name, not yet renamed into place, and (for multi-output jobs) other outputs may already be.
"""

from __future__ import annotations

import json
import signal

import pytest
from conftest import RUN, SIZE, VARIANT, ok

M = f"{RUN}/models/{VARIANT}/{SIZE}"
E = f"{RUN}/evals/{VARIANT}/{SIZE}"
# kind of job -> (rule to rerun, target, file name the kill waits for, files compared)
CASES = {
    "tokenize": (
        "tokenize",
        f"{RUN}/data/standard/documents.json",
        "documents.bin",
        [f"{RUN}/data/standard/documents.{e}" for e in ("bin", "idx", "json")],
    ),
    "dedup": (
        "dedup_clusters",
        f"{RUN}/data/dedup/dedup_stats.json",
        "dropped_ids.npy",  # kept_ids.npy is already in place at that moment
        [
            f"{RUN}/data/dedup/{f}"
            for f in ("kept_ids.npy", "dropped_ids.npy", "clusters.jsonl", "dedup_stats.json")
        ],
    ),
    "pack": (
        "pack_shuffle",
        f"{RUN}/data/standard/samples.json",
        "samples.bin",
        [f"{RUN}/data/standard/samples.{e}" for e in ("bin", "idx", "json")],
    ),
    # segment (0, 8] checkpoints steps 4 and 8: killed while saving step 4, mid-segment
    "train_segment": (
        "train_tiny_70m_0_8",
        f"{M}/step8",
        "pythia_checkpoint.json",
        [f"{M}/step{s}/{f}" for s in (4, 8) for f in ("model.safetensors", "config.json")]
        + [f"{M}/step8/deepspeed/state/mp_rank_00_model_states.pt"],
    ),
    # one job publishes segment (0, 8]'s checkpoints 0, 4, 8: killed while writing its receipt,
    # after pushing all three (the rerun finds them on the hub, same bytes, and pushes nothing)
    "upload": (
        "upload_tiny_70m_0_8",
        f"{RUN}/hub/{VARIANT}/{SIZE}/steps0-8.json",
        "steps0-8.json",
        [f"{RUN}/hub/{VARIANT}/{SIZE}/steps0-8.json"],
    ),
    # one job evaluates steps 0 and 8: killed while writing the first result
    "eval": (
        "evaluate_tiny_70m_0_8",
        f"{E}/step8/0shot.json",
        "0shot.json",
        [f"{E}/step{s}/0shot.json" for s in (0, 8)],
    ),
    # two scoring jobs of step 8's samples: killed while writing the first shard's scores
    "memorization": (
        "memorization_scores",
        f"{RUN}/memorization/{VARIANT}/{SIZE}/step8/part0.parquet",
        "part0.parquet",
        [f"{RUN}/memorization/{VARIANT}/{SIZE}/step8/part0.parquet"],
    ),
    "figure": (
        "fig_lambada_over_training",
        f"{RUN}/figures/lambada_over_training.png",
        "lambada_over_training.png",
        [f"{RUN}/figures/lambada_over_training.png"],
    ),
}
# Fields that record when or how long, not what: the rest of these files must be equal.
VOLATILE = {"seconds", "uploaded_at", "sha256"}


def _content(path):
    if path.suffix == ".json" and ("/evals/" in path.as_posix() or "/hub/" in path.as_posix()):
        data = {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE}
        data.get("config", {}).pop("model_path", None)  # absolute: the copy's own directory
        if "receipts" in data:  # an upload job's: one per branch it published
            data["receipts"] = [
                {k: v for k, v in r.items() if k not in VOLATILE} for r in data["receipts"]
            ]
        return data
    return path.read_bytes()


@pytest.mark.parametrize("kind", list(CASES))
def test_sigkill_mid_write_then_rerun_equals_uninterrupted(kind, copy, baseline):
    rule, target, victim, compared = CASES[kind]
    base, _ = baseline
    killed = copy.snakemake(target, "--forcerun", rule, fault=f"kill:{victim}")
    assert killed.returncode == -signal.SIGKILL, (
        f"{kind}: the job was not killed\n{killed.stdout[-3000:]}{killed.stderr[-3000:]}"
    )
    if kind == "dedup":  # its kept_ids.npy was in place: Snakemake refuses it as incomplete
        ok(copy.snakemake("--unlock"))
        refused = copy.snakemake(target)
        assert refused.returncode != 0
        assert "incomplete" in (refused.stdout + refused.stderr).lower()
    ok(copy.snakemake("--unlock"))
    ok(copy.snakemake(target, "--rerun-incomplete"))
    for rel in compared:
        got, want = copy.path / rel, base.path / rel
        assert _content(got) == _content(want), f"{kind}: {rel} differs from the uninterrupted run"
    # the killed writer's temporaries were cleaned up by the rerun
    for rel in compared:
        left = list((copy.path / rel).parent.glob(".*.tmp")) + list(
            (copy.path / rel).parent.glob(".*.partial")
        )
        assert not left, f"{kind}: leftovers {left}"
    if kind == "eval":  # and the table built from the rerun's results is the same table
        ok(copy.snakemake(f"{RUN}/tables/evals.csv"))
        table = f"{RUN}/tables/evals.csv"
        assert (copy.path / table).read_bytes() == (base.path / table).read_bytes()
