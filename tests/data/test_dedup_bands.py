"""Dedup as a banded map-reduce (signatures -> bucket jobs -> one cluster job): the kept ids
and clusters equal one in-memory datasketch MinHashLSH's, on the embedded and CI corpora and
on synthetic signatures built to hit every corner (chains, copies, key collisions)."""

import json

import numpy as np
import pytest

from workflow.core.config import load_config
from workflow.data import dedup_buckets, dedup_clusters, dedup_signatures
from workflow.data.corpus import generate_corpus
from workflow.data.dedup import deduplicate, minhash_lsh, read_dedup_outputs
from workflow.data.dedup_buckets import band_groups, bucket_pairs
from workflow.data.dedup_clusters import agree_min, write_clusters
from workflow.data.dedup_signatures import lsh_bands, signature_shard, write_signature_shard
from workflow.data.shards import corpus_shards

THRESHOLD = 0.87


def test_band_split_is_datasketchs():
    assert lsh_bands(0.87, 128) == (7, 18)  # MinHashLSH(threshold=0.87, num_perm=128).b, .r
    assert agree_min(0.87, 128) == 112 and 111 / 128 < 0.87 <= 112 / 128
    assert band_groups(7, 1) == [(b, b + 1) for b in range(7)]
    assert band_groups(7, 3) == [(0, 3), (3, 6), (6, 7)]
    with pytest.raises(ValueError, match="bands_per_job must be >= 1"):
        band_groups(7, 0)


def test_band_split_equals_minhash_lsh_without_importing_scipy():
    """lsh_bands computes datasketch's optimal split itself (a Snakemake start plans the bucket
    jobs with it; datasketch's import pulls scipy.integrate): the same (b, r), or the same
    refusal, as MinHashLSH (checked for 0.50-0.95 in steps of 0.01 and 32-256 permutations;
    here a sample, datasketch takes ~0.15 s a split)."""
    import subprocess
    import sys

    from datasketch import MinHashLSH

    for num_perm, threshold in [(n, t) for n in (64, 128) for t in (0.5, 0.62, 0.8, 0.87, 0.95)]:
        try:
            lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
            want = (lsh.b, lsh.r)
        except ValueError:
            want = None
        if want is None:
            with pytest.raises(ValueError, match="fewer than 2 bands"):
                lsh_bands(threshold, num_perm)
        else:
            assert lsh_bands(threshold, num_perm) == want, threshold
    probe = "import sys, workflow.plan.jobs; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the plan (every Snakemake start) imports no scipy


def _banded(sig_paths, tmp_path, bands_per_job, **kwargs):
    bands = json.loads(sig_paths[0].with_suffix(".json").read_text())["bands"]
    pairs = []
    for g in range(len(band_groups(bands, bands_per_job))):
        pairs.append(tmp_path / f"group{g}.npy")
        bucket_pairs(sig_paths, g, pairs[-1], bands_per_job=bands_per_job)
    write_clusters(sig_paths, pairs, tmp_path / "out", **kwargs)
    return read_dedup_outputs(tmp_path / "out")


@pytest.mark.parametrize("config", ["config/config.yaml", "tests/fixtures/ci.yaml"])
def test_equals_minhash_lsh_on_the_suites_corpora(config, tmp_path):
    data = load_config(config)["data"]
    generate_corpus(tmp_path / "train.jsonl", tmp_path / "heldout.jsonl", **data["generator"])
    params = {k: data["dedup"][k] for k in ("threshold", "num_perm", "shingle_size", "seed")}
    sig_paths = []
    for s in corpus_shards([tmp_path / "train.jsonl"], data["dedup"]["shards"]):
        sig_paths.append(tmp_path / f"part{s.index}.npy")
        signature_shard(s, sig_paths[-1], **params)
    reference = minhash_lsh(sig_paths, threshold=params["threshold"])
    assert len(reference.clusters) >= 30  # the planted clusters are there to be found
    for bands_per_job in (1, 3, 7):
        result = _banded(sig_paths, tmp_path / f"b{bands_per_job}", bands_per_job)
        assert result.kept_ids == reference.kept_ids
        assert result.clusters == reference.clusters
        assert result.stats["band_groups"] == -(-7 // bands_per_job)
        assert result.stats["documents_out"] == len(reference.kept_ids)


def _write(tmp_path, sigs: np.ndarray, shards: int = 1) -> list:
    """Signature shards of the given rows, as `signature_shard` writes them."""
    paths = []
    for k, part in enumerate(np.array_split(sigs, shards)):
        paths.append(tmp_path / f"part{k}.npy")
        meta = {"shard": k, "num_shards": shards, "empty_skipped": 0, "shingle_size": 5, "seed": 1}
        write_signature_shard(part, paths[-1], threshold=THRESHOLD, meta=meta)
    return paths


def test_a_chain_is_not_one_cluster(tmp_path):
    # A~B and B~C but not A~C: MinHashLSH drops B (into A) and keeps C, since B, dropped, is
    # not in its index. Union-find over the pairs would drop C too.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, 128, dtype=np.uint32)
    b = a.copy()
    b[0:8] += 1  # 120 of 128 agree with A, in band 0 only
    c = b.copy()
    c[20:30] += 1  # 118 agree with B (band 1); 110 < 112 with A
    noise = rng.integers(0, 2**32, (5, 128), dtype=np.uint32)
    paths = _write(tmp_path, np.vstack([noise[:2], a, b, noise[2:4], c, noise[4:]]))
    reference = minhash_lsh(paths, threshold=THRESHOLD)
    assert reference.clusters == [[2, 3]] and 6 in reference.kept_ids
    for bands_per_job in (1, 2, 7):
        result = _banded(paths, tmp_path / str(bands_per_job), bands_per_job)
        assert (result.kept_ids, result.clusters) == (reference.kept_ids, [[2, 3]])
        # bands 2-6 hold A, B and C; band 0 B and C; band 1 A and B: 7 buckets, 19 pairs
        assert (result.stats["buckets"], result.stats["pairs"]) == (7, 19)


def synthetic(n: int, rng, families: int, copies=(2, 40), edits=(0, 24)) -> np.ndarray:
    """Random signatures with planted families: copies of a row, each with a few values
    changed (none: an identical copy), scattered through the corpus."""
    sigs = rng.integers(0, 2**32, (n, 128), dtype=np.uint32)
    for _ in range(families):
        size = int(rng.integers(*copies))
        members = np.sort(rng.choice(n, size, replace=False))
        base = sigs[members[0]]
        for m in members[1:]:
            row = base.copy()
            cols = rng.choice(128, int(rng.integers(*edits)), replace=False)
            row[cols] = rng.integers(0, 2**32, len(cols), dtype=np.uint32)
            sigs[m] = row
            if rng.random() < 0.3:  # chains: the next copy derives from this one
                base = row
    return sigs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_equals_minhash_lsh_on_planted_families(tmp_path, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    paths = _write(tmp_path, synthetic(3000, rng, families=120), shards=3)
    reference = minhash_lsh(paths, threshold=THRESHOLD)
    assert len(reference.kept_ids) < 2600
    one, four = _banded(paths, tmp_path / "a", 1), _banded(paths, tmp_path / "b", 4)
    assert (one.kept_ids, one.clusters) == (four.kept_ids, four.clusters)
    assert (one.stats["pairs"], one.stats["buckets"]) == (
        four.stats["pairs"],
        four.stats["buckets"],
    )
    # tiny passes, batches, pair chunks and windows: the same result, piece by piece
    monkeypatch.setattr(dedup_buckets, "BATCH_MEMBERS", 7)
    monkeypatch.setattr(dedup_buckets, "PASS_DOCUMENTS", 500)
    result = _banded(paths, tmp_path / "c", 3, window_pairs=50)
    assert result.kept_ids == reference.kept_ids and result.clusters == reference.clusters
    assert result.stats["documents_in"] == 3000


def test_key_collisions_split_into_exact_buckets(tmp_path, monkeypatch):
    # a weak key (a band's first value mod 3) puts unequal bands into one run of equal keys:
    # the bucket job compares the values, so the buckets and the result are unchanged
    def weak(sigs, bands, rows):
        return np.stack([sigs[:, b * rows].astype(np.uint64) % 3 for b in range(bands)])

    rng = np.random.default_rng(7)
    sigs = synthetic(400, rng, families=30)
    reference = minhash_lsh(_write(tmp_path / "ref", sigs), threshold=THRESHOLD)
    monkeypatch.setattr(dedup_signatures, "band_keys", weak)
    result = _banded(_write(tmp_path, sigs), tmp_path, 7)
    assert result.kept_ids == reference.kept_ids and result.clusters == reference.clusters


def test_no_duplicates_and_all_duplicates(tmp_path):
    rng = np.random.default_rng(3)
    distinct = rng.integers(0, 2**32, (50, 128), dtype=np.uint32)
    result = _banded(_write(tmp_path / "d", distinct), tmp_path / "d", 1)
    assert result.kept_ids == list(range(50)) and result.clusters == []
    same = np.repeat(distinct[:1], 30, axis=0)
    result = _banded(_write(tmp_path / "s", same, shards=4), tmp_path / "s", 1)
    assert result.kept_ids == [0] and result.clusters == [list(range(30))]
    # one bucket a band, 30 pairs each (the head's own included): not 30 * 29 / 2
    assert (result.stats["buckets"], result.stats["pairs"]) == (7, 7 * 30)


def test_one_process_chain_equals_jobs(tmp_path):
    generate_corpus(
        tmp_path / "t.jsonl",
        tmp_path / "h.jsonl",
        seed=4,
        num_documents=300,
        heldout_documents=5,
        near_duplicate_clusters=20,
        near_duplicate_copies=3,
        near_duplicate_edit_rate=0.02,
    )
    params = dict(threshold=0.87, num_perm=128, shingle_size=5, seed=1)
    one = deduplicate(tmp_path / "t.jsonl", **params, shards=3, bands_per_job=2)
    paths = []
    for s in corpus_shards([tmp_path / "t.jsonl"], 3):
        paths.append(tmp_path / f"part{s.index}.npy")
        signature_shard(s, paths[-1], **params)
    ref = minhash_lsh(paths, threshold=0.87)
    assert (one.kept_ids, one.clusters) == (ref.kept_ids, ref.clusters)
    assert one.stats["shards"] == 3 and one.stats["band_groups"] == 4


def test_missing_or_mismatched_inputs_are_named(tmp_path):
    rng = np.random.default_rng(5)
    paths = _write(tmp_path, synthetic(200, rng, families=10), shards=2)
    with pytest.raises(FileNotFoundError, match=r"gone\.npy: no such file: signature shard"):
        bucket_pairs([paths[0], tmp_path / "gone.npy"], 0, tmp_path / "g.npy", bands_per_job=1)
    with pytest.raises(ValueError, match="1 signature shards given, they were made as 2"):
        bucket_pairs(paths[:1], 0, tmp_path / "g.npy", bands_per_job=1)
    with pytest.raises(ValueError, match=r"band group 7 is not in \[0, 7\)"):
        bucket_pairs(paths, 7, tmp_path / "g.npy", bands_per_job=1)
    dedup_signatures.band_keys_path(paths[1]).unlink()
    with pytest.raises(FileNotFoundError, match=r"part1\.bands\.npy: no such file"):
        bucket_pairs(paths, 0, tmp_path / "g.npy", bands_per_job=1)
    assert not list(tmp_path.glob("g.*")) and not list(tmp_path.glob(".g.*"))
    paths = _write(tmp_path, synthetic(200, rng, families=10), shards=2)
    groups = [tmp_path / f"group{g}.npy" for g in range(3)]
    for g, p in enumerate(groups):
        bucket_pairs(paths, g, p, bands_per_job=3)
    with pytest.raises(FileNotFoundError, match=r"gone1\.npy: no such bucket pair file"):
        write_clusters(paths, [groups[0], tmp_path / "gone1.npy", groups[2]], tmp_path / "o")
    with pytest.raises(ValueError, match=r"group2\.npy: is band group 2, expected group 1"):
        write_clusters(paths, [groups[0], groups[2], groups[1]], tmp_path / "o")
    with pytest.raises(ValueError, match="2 band groups given, the bands were split into 3"):
        write_clusters(paths, groups[:2], tmp_path / "o")
    bucket_pairs(paths, 0, tmp_path / "other.npy", bands_per_job=2)
    with pytest.raises(
        ValueError, match=r"group1\.npy: made with groups=3, the first group with groups=4"
    ):
        write_clusters(paths, [tmp_path / "other.npy", *groups[1:]], tmp_path / "o")
    assert not (tmp_path / "o").exists()
    assert dedup_clusters.write_clusters(paths, groups, tmp_path / "o")["documents_in"] == 200
