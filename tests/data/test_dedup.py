"""MinHashLSH near-duplicate removal on planted clusters, and selecting the kept documents."""

import json
import random
from collections import defaultdict

import numpy as np
import pytest
from datasketch import MinHash

from workflow.core.io import read_json
from workflow.data import dedup, dedup_signatures
from workflow.data.corpus import generate_corpus
from workflow.data.dedup import deduplicate, read_dedup_outputs
from workflow.data.dedup_signatures import minhash_signatures, shingles
from workflow.data.deduped_documents import select_documents, token_reduction_report
from workflow.data.indexed_dataset import MMapIndexedDataset, write_indexed_dataset
from workflow.data.jsonl import CorpusError, read_jsonl
from workflow.data.shards import corpus_shards
from workflow.data.tokenize import tokenize_documents
from workflow.data.tokenizer import train_bpe

PARAMS = dict(threshold=0.87, num_perm=128, shingle_size=5, seed=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("dedup")
    generate_corpus(
        d / "train.jsonl",
        d / "heldout.jsonl",
        seed=11,
        num_documents=600,
        heldout_documents=5,
        near_duplicate_clusters=40,
        near_duplicate_copies=4,
        near_duplicate_edit_rate=0.02,
    )
    return d / "train.jsonl"


def test_shingles():
    assert shingles("A  b\nc", 5) == {b"a b c"}  # short text: one shingle, normalised
    assert shingles("a b c d e F", 5) == {b"a b c d e", b"b c d e f"}


def test_signatures_match_datasketch():
    texts = ["the quick brown fox jumps over the lazy dog", "hello", "one two three four five six"]
    sig = minhash_signatures(texts, num_perm=64, shingle_size=5, seed=3)
    assert sig.shape == (3, 64) and sig.dtype == np.uint64
    for row, text in zip(sig, texts, strict=True):
        m = MinHash(num_perm=64, seed=3)
        m.update_batch(shingles(text, 5))
        np.testing.assert_array_equal(row, m.hashvalues.astype(np.uint64))


def test_planted_near_duplicates_are_found(corpus):
    result = deduplicate(corpus, **PARAMS)
    planted = defaultdict(list)
    for doc_id, (_, r) in enumerate(read_jsonl(corpus)):
        if r["meta"]["cluster"] is not None:
            planted[r["meta"]["cluster"]].append(doc_id)
    kept = set(result.kept_ids)
    collapsed = sum(sum(i in kept for i in ids) == 1 for ids in planted.values())
    assert collapsed / len(planted) >= 0.95  # recall of clusters
    removed_planted = sum(i not in kept for ids in planted.values() for i in ids)
    assert removed_planted / (len(planted) * 3) >= 0.95
    # every found cluster starts with its kept (earliest) member
    for cluster in result.clusters:
        assert cluster[0] in kept and not any(i in kept for i in cluster[1:])
        assert cluster[0] == min(cluster)
    assert result.kept_ids == sorted(kept)
    s = result.stats
    assert s["documents_in"] == 600 and s["documents_out"] == len(kept)
    assert s["documents_removed"] == 600 - len(kept) >= 120
    assert s["duplicate_clusters"] == len(result.clusters)
    assert (s["threshold"], s["num_perm"], s["shingle_size"]) == (0.87, 128, 5)


def test_distinct_documents_are_kept(tmp_path):
    rng = random.Random(0)
    words = [f"w{i}" for i in range(2000)]
    texts = [" ".join(rng.choices(words, k=40)) for _ in range(200)]
    base = texts[0].split()
    texts.append(" ".join(base[:20] + rng.choices(words, k=20)))  # half overlap: distinct
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    result = deduplicate(path, **PARAMS)
    assert result.kept_ids == list(range(201)) and result.clusters == []


def test_deterministic(corpus):
    a, b = deduplicate(corpus, **PARAMS), deduplicate(corpus, **PARAMS)
    assert (a.kept_ids, a.clusters, a.stats) == (b.kept_ids, b.clusters, b.stats)


def test_write_outputs(corpus, tmp_path):
    result = deduplicate(corpus, **PARAMS, out_dir=tmp_path / "out")
    assert read_dedup_outputs(tmp_path / "out") == result
    kept = np.load(tmp_path / "out" / "kept_ids.npy")
    assert kept.tolist() == result.kept_ids
    with open(tmp_path / "saved.npy", "wb") as f:  # written in chunks, as np.save writes it
        np.save(f, kept)
    assert (tmp_path / "out" / "kept_ids.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    lines = (tmp_path / "out" / "clusters.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == result.clusters
    assert read_json(tmp_path / "out" / "dedup_stats.json") == result.stats


def test_ids_agree_with_tokenized_documents(tmp_path):
    # empty documents are skipped by both stages, so kept id i is tokenized entry i
    texts = [
        "alpha beta gamma delta epsilon zeta",
        "",
        "one two three four five six seven",
        "alpha beta gamma delta epsilon zeta",
        "   ",
        "eta theta iota kappa lambda mu",
    ]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    train_bpe([src], 300, tmp_path / "tok.json")
    tokenize_documents(src, tmp_path / "tok.json", tmp_path / "docs")
    result = deduplicate(src, **PARAMS)
    assert result.kept_ids == [0, 1, 3] and result.clusters == [[0, 2]]
    stats = select_documents(tmp_path / "docs", result.kept_ids, tmp_path / "kept")
    full, kept = MMapIndexedDataset(tmp_path / "docs"), MMapIndexedDataset(tmp_path / "kept")
    assert [x.tolist() for x in kept] == [full[i].tolist() for i in (0, 1, 3)]
    assert stats == {
        "documents_in": 4,
        "documents_out": 3,
        "tokens_in": full.num_tokens,
        "tokens_out": kept.num_tokens,
    }
    assert stats["tokens_out"] < stats["tokens_in"]


def test_select_documents_rejects_foreign_ids(tmp_path):
    write_indexed_dataset(tmp_path / "docs", [[1, 2], [3], [4, 5, 6]])
    with pytest.raises(ValueError, match=r"strictly increasing ids in \[0, 3\).*another corpus"):
        select_documents(tmp_path / "docs", [0, 5], tmp_path / "kept")
    with pytest.raises(ValueError, match="strictly increasing"):
        select_documents(tmp_path / "docs", [2, 1], tmp_path / "kept")
    assert not (tmp_path / "kept.bin").exists() and not (tmp_path / "kept.idx").exists()
    stats = select_documents(tmp_path / "docs", np.array([], dtype=np.int64), tmp_path / "kept")
    assert stats["tokens_out"] == 0 and len(MMapIndexedDataset(tmp_path / "kept")) == 0


VARIED_TEXTS = [
    "",
    "   ",
    "x",
    "hello",
    "The quick brown fox jumps over the lazy dog",
    "one two three four five six seven eight nine ten eleven twelve " * 20,
    "Ünïcödé façade naïve — 東京 北京 大阪 京都 名古屋 横浜 \u00e9t\u00e9 \U0001f600 emoji",
    "tab\tseparated\nnew lines\r\nand   many    spaces a a a a a a a a",
    "repeated repeated repeated repeated repeated repeated repeated",
]


def _reference_signature(text: str, num_perm: int, seed: int, shingle_size: int, **kw):
    m = MinHash(num_perm=num_perm, seed=seed, **kw)
    for s in shingles(text, shingle_size):  # the straightforward per-shingle loop
        m.update(s)
    return m.hashvalues


@pytest.mark.parametrize("num_perm,seed,shingle_size", [(128, 1, 5), (64, 3, 2), (7, 0, 1)])
def test_vectorised_signatures_bit_identical(num_perm, seed, shingle_size):
    rng = random.Random(seed)
    words = ["a", "b", "Ça", "日本", "x-y", "z"]
    texts = VARIED_TEXTS + [" ".join(rng.choices(words, k=rng.randint(0, 30))) for _ in range(50)]
    sig = minhash_signatures(texts, num_perm=num_perm, shingle_size=shingle_size, seed=seed)
    assert sig.shape == (len(texts), num_perm) and sig.dtype == np.uint64
    for row, text in zip(sig, texts, strict=True):
        ref = _reference_signature(text, num_perm, seed, shingle_size)
        np.testing.assert_array_equal(row, ref.astype(np.uint64))


def test_vectorised_signatures_across_batches(monkeypatch):
    # many small numpy passes give the same rows as one
    texts = VARIED_TEXTS * 5
    one = minhash_signatures(texts, num_perm=16, shingle_size=3, seed=5)
    monkeypatch.setattr(dedup_signatures, "_PASS_BYTES", 16 * 8 * 3)  # 3 shingles a pass
    many = minhash_signatures(texts, num_perm=16, shingle_size=3, seed=5)
    np.testing.assert_array_equal(one, many)
    assert minhash_signatures([], num_perm=16, shingle_size=3, seed=5).shape == (0, 16)


@pytest.mark.parametrize("scheme", ["legacy", "affine32"])
def test_vectorised_schemes_bit_identical(scheme):
    perms = dedup_signatures.Permutations(32, 9, scheme=scheme)
    for text in VARIED_TEXTS:
        h = perms.hash_shingles(list(shingles(text, 3)))
        sig = perms.signatures(h, np.array([0, len(h)]))[0]
        ref = _reference_signature(text, 32, 9, 3, scheme=scheme)
        assert sig.dtype == ref.dtype
        np.testing.assert_array_equal(sig, ref)


# --- scatter (signature shards over byte ranges) and gather (one LSH) ---------------------


@pytest.mark.parametrize("shards", [2, 3, 7])
def test_sharded_dedup_equals_one_shard(corpus, tmp_path, shards):
    one = deduplicate(corpus, **PARAMS)
    many = deduplicate(corpus, **PARAMS, shards=shards)
    assert (many.kept_ids, many.clusters) == (one.kept_ids, one.clusters)
    assert many.stats["shards"] == shards
    assert many.stats["documents_in"] == one.stats["documents_in"]


def test_byte_ranges_give_every_line_to_exactly_one_shard(tmp_path):
    texts = ["", "a b", "ccc ddd eee", "   ", "f", "g h i j k l m n", "o"] * 5
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts) + "\n\n")
    whole = minhash_signatures(
        [r["text"] for _, r in read_jsonl(src)], num_perm=32, shingle_size=2, seed=3
    )
    for n in (1, 2, 5, 13, 40):  # more shards than lines: some shards are empty
        metas, sigs = [], []
        for k in range(n):
            out = tmp_path / f"{n}-{k}.npy"
            shard = corpus_shards([src], n)[k]
            metas.append(
                dedup_signatures.signature_shard(
                    shard, out, num_perm=32, shingle_size=2, seed=3, threshold=0.87
                )
            )
            sigs.append(np.load(out))
        assert sum(m["documents"] for m in metas) == len(whole) == 25
        assert sum(m["empty_skipped"] for m in metas) == 10
        assert np.array_equal(np.concatenate(sigs), whole)
        assert metas[0]["bytes"][0] == 0 and metas[-1]["bytes"][1] == src.stat().st_size


def test_shard_errors_name_the_line(tmp_path):
    src = tmp_path / "d.jsonl"
    good = json.dumps({"text": "a b c d e f"}) + "\n"
    src.write_bytes(good.encode() * 50 + b'{"text": "caf\xe9"}\n' + good.encode() * 50)
    with pytest.raises(CorpusError, match=r"d\.jsonl:51: not valid UTF-8"):
        for k in range(4):
            dedup_signatures.signature_shard(
                corpus_shards([src], 4)[k], tmp_path / f"s{k}.npy", **PARAMS
            )
    assert not (tmp_path / "s1.npy").exists() and not list(tmp_path.glob("*.tmp*"))


def test_gather_refuses_mixed_or_missing_shards(corpus, tmp_path):
    a, b = tmp_path / "a0.npy", tmp_path / "a1.npy"
    s0, s1 = corpus_shards([corpus], 2)
    dedup_signatures.signature_shard(s0, a, **PARAMS)
    dedup_signatures.signature_shard(s1, b, **{**PARAMS, "num_perm": 64})
    with pytest.raises(ValueError, match=r"a1\.npy: made with .*rebuild the signatures"):
        dedup.minhash_lsh([a, b], threshold=0.87)
    with pytest.raises(ValueError, match="1 signature shards given, they were made as 2"):
        dedup.minhash_lsh([a], threshold=0.87)
    with pytest.raises(ValueError, match=r"a1\.npy: is shard 1, expected shard 0"):
        dedup.minhash_lsh([b, a], threshold=0.87)
    dedup_signatures.signature_shard(s1, b, **PARAMS)
    np.save(b, np.zeros((3, 128), np.uint64))  # signatures that do not match their sidecar
    with pytest.raises(ValueError, match=r"a1\.npy: shape \(3, 128\)"):
        dedup.minhash_lsh([a, b], threshold=0.87)


def test_outputs_kept_dropped_and_token_report(corpus, tmp_path):
    result = deduplicate(corpus, **PARAMS, shards=2, out_dir=tmp_path)
    kept, dropped = np.load(tmp_path / "kept_ids.npy"), np.load(tmp_path / "dropped_ids.npy")
    assert sorted([*kept, *dropped]) == list(range(result.stats["documents_in"]))
    assert sorted(dropped.tolist()) == sorted(i for c in result.clusters for i in c[1:])
    docs = {"tokens_in": 1000, "tokens_out": 620}
    report = token_reduction_report(result.stats, docs)
    assert report["tokens_removed_fraction"] == 0.38
    assert report["paper"]["tokens_removed_fraction"] == round(1 - 207 / 334, 6)
    assert report["documents_in"] - report["documents_out"] == len(dropped)
    assert report["settings"]["shards"] == 2
