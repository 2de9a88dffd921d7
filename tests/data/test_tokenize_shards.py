"""Tokenization shard by shard and the merge: byte for byte one job's over the whole corpus;
a raw source read streaming, its held-out split by document position, bad shards refused."""

import copy
import json
from collections import Counter

import pytest
import zstandard

from workflow.core.config import ConfigError, SuiteConfig, load_config
from workflow.core.io import read_json
from workflow.data.corpus import generate_corpus
from workflow.data.heldout import split_heldout
from workflow.data.indexed_dataset import IndexedDatasetError, MMapIndexedDataset
from workflow.data.jsonl import CorpusError, read_jsonl
from workflow.data.shards import corpus_shards
from workflow.data.tokenize import tokenize_documents, tokenize_shard
from workflow.data.tokenize_merge import merge_stats, merge_tokenized
from workflow.data.tokenizer import train_bpe
from workflow.plan.estimate import plan_jobs
from workflow.plan.jobs import SuiteJobs
from workflow.plan.resources import check_node_fit


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    generate_corpus(
        d / "train.jsonl",
        d / "heldout.jsonl",
        seed=5,
        num_documents=300,
        heldout_documents=10,
        near_duplicate_clusters=5,
        near_duplicate_copies=3,
        near_duplicate_edit_rate=0.01,
    )
    with open(d / "train.jsonl", "a") as f:  # empty documents are skipped alike everywhere
        f.write(json.dumps({"text": ""}) + "\n\n" + json.dumps({"text": "  "}) + "\n")
    train_bpe([d / "train.jsonl"], 400, d / "tokenizer.json")
    return d


def _tokenize_in_shards(shards, tok, out, workers=1):
    prefixes = []
    for s in shards:
        prefix = out / f"part{s.index}"
        stats = tokenize_shard(s, tok, prefix, workers=workers, batch_docs=16)
        (out / f"part{s.index}.json").write_text(json.dumps(stats))
        prefixes.append(prefix)
    merge_tokenized(prefixes, out / "documents")
    merge_stats([f"{p}.json" for p in prefixes], out / "documents.json")


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_merged_shards_are_one_jobs_bytes(data, tmp_path, parts):
    tok = data / "tokenizer.json"
    one = tokenize_documents(data / "train.jsonl", tok, tmp_path / "one")
    (tmp_path / "one.json").write_text(json.dumps(one, indent=2, sort_keys=True) + "\n")
    shards = corpus_shards([data / "train.jsonl"], parts)
    assert [s.index for s in shards] == list(range(parts))
    _tokenize_in_shards(shards, tok, tmp_path, workers=2 if parts == 3 else 1)
    for ext in ("bin", "idx", "json"):
        assert (tmp_path / f"documents.{ext}").read_bytes() == (
            tmp_path / f"one.{ext}"
        ).read_bytes()
    assert one["empty_skipped"] == 2 and len(MMapIndexedDataset(tmp_path / "documents")) == 300


def test_more_shards_than_lines_gives_empty_shards(tmp_path, data):
    src = tmp_path / "few.jsonl"
    src.write_text("".join(json.dumps({"text": f"doc {i} text"}) + "\n" for i in range(3)))
    _tokenize_in_shards(corpus_shards([src], 9), data / "tokenizer.json", tmp_path)
    tokenize_documents(src, data / "tokenizer.json", tmp_path / "one")
    assert (tmp_path / "documents.bin").read_bytes() == (tmp_path / "one.bin").read_bytes()
    assert (tmp_path / "documents.idx").read_bytes() == (tmp_path / "one.idx").read_bytes()


def _raw_shards(tmp_path, data, sizes):
    """The generated training documents split into .jsonl.zst files of `sizes` lines."""
    lines = (data / "train.jsonl").read_bytes().splitlines(keepends=True)
    paths, at = [], 0
    for k, n in enumerate(sizes):
        p = tmp_path / f"{k:02d}.jsonl.zst"
        p.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines[at : at + n])))
        paths.append(p)
        at += n
    assert at == len(lines)
    return paths


def test_raw_zst_shards_with_a_heldout_tail(data, tmp_path):
    # the Pile's layout: whole compressed shards, the last documents of the last held out
    paths = _raw_shards(tmp_path, data, [120, 100, 83])
    shards = corpus_shards(paths, heldout_documents=7)
    assert [s.heldout_tail for s in shards] == [0, 0, 7]
    _tokenize_in_shards(shards, data / "tokenizer.json", tmp_path, workers=2)
    stats = split_heldout(paths[-1], tmp_path / "heldout.jsonl", 7)
    texts = [r["text"] for _, r in read_jsonl(data / "train.jsonl")]
    heldout = [r["text"] for _, r in read_jsonl(tmp_path / "heldout.jsonl")]
    assert heldout == texts[-7:]
    assert stats["heldout_documents"] == 7 and stats["empty_skipped"] == 2
    # the training documents are all others, in order: as one job over their concatenation
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:-7]))
    tokenize_documents(train, data / "tokenizer.json", tmp_path / "one")
    assert (tmp_path / "documents.bin").read_bytes() == (tmp_path / "one.bin").read_bytes()
    assert (tmp_path / "documents.idx").read_bytes() == (tmp_path / "one.idx").read_bytes()
    assert read_json(tmp_path / "documents.json")["documents"] == len(texts) - 7


def test_bad_zst_and_bad_json_name_the_shard_and_line(data, tmp_path):
    tok = data / "tokenizer.json"
    bad = tmp_path / "03.jsonl.zst"
    bad.write_bytes(b"this is not zstd at all" * 10)
    (shard,) = corpus_shards([bad])
    with pytest.raises(CorpusError, match=r"03\.jsonl\.zst: after line 0: not valid zstd"):
        tokenize_shard(shard, tok, tmp_path / "out", workers=2)
    good = json.dumps({"text": "a b c"}) + "\n"
    bad.write_bytes(zstandard.ZstdCompressor().compress((good * 40 + "{oops\n").encode()))
    for workers in (1, 2):
        with pytest.raises(CorpusError, match=r"03\.jsonl\.zst:41: not valid JSON"):
            tokenize_shard(shard, tok, tmp_path / "out", workers=workers)
    plain = tmp_path / "p.jsonl"
    plain.write_text(good * 50 + "[1]\n" + good * 50)
    with pytest.raises(CorpusError, match=r"p\.jsonl:51: expected an object"):
        for s in corpus_shards([plain], 4):
            tokenize_shard(s, tok, tmp_path / f"out{s.index}", workers=2)
    # the shard with the bad line left nothing (shard 0 before it was complete)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out")))
    assert names == ["out0.bin", "out0.idx"]


def test_heldout_needs_enough_documents(data, tmp_path):
    paths = _raw_shards(tmp_path, data, [297, 6])  # 3 documents, 3 empty lines
    with pytest.raises(CorpusError, match=r"01\.jsonl\.zst: 3 documents.*need more than the 5"):
        split_heldout(paths[-1], tmp_path / "h.jsonl", 5)
    with pytest.raises(CorpusError, match="fewer than the 5 held out"):
        tokenize_shard(
            corpus_shards(paths, heldout_documents=5)[1], data / "tokenizer.json", tmp_path / "x"
        )
    assert not list(tmp_path.glob("h.jsonl*")) and not list(tmp_path.glob("x.*"))
    with pytest.raises(ValueError, match="cannot be split into byte ranges"):
        corpus_shards(paths, 2)


def test_merge_refuses_mixed_or_missing_shards(data, tmp_path):
    from workflow.data.indexed_dataset import write_indexed_dataset

    write_indexed_dataset(tmp_path / "a", [[1, 2], [3]])
    write_indexed_dataset(tmp_path / "b", [[4]], dtype="int32")
    with pytest.raises(
        IndexedDatasetError, match=r"b\.idx: tokens are int32.*different tokenizers"
    ):
        merge_tokenized([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    with pytest.raises(IndexedDatasetError, match=r"c\.bin: no such file"):
        merge_tokenized([tmp_path / "a", tmp_path / "c"], tmp_path / "m")
    assert not list(tmp_path.glob("m.*")) and not list(tmp_path.glob(".m.*"))
    (tmp_path / "a.json").write_text(
        json.dumps(
            {
                "documents": 1,
                "tokens": 1,
                "empty_skipped": 0,
                "eod_appended": 1,
                "vocab_size": 5,
                "dtype": "uint16",
            }
        )
    )
    (tmp_path / "b.json").write_text(
        json.dumps(
            {
                "documents": 1,
                "tokens": 1,
                "empty_skipped": 0,
                "eod_appended": 1,
                "vocab_size": 6,
                "dtype": "uint16",
            }
        )
    )
    with pytest.raises(ValueError, match=r"disagree on vocab_size: \['5', '6'\]"):
        merge_stats([tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "m.json")


# ------------------------------------------------------------------ the data jobs of a suite


def test_the_papers_data_jobs_read_raw_shards_in_bounded_memory():
    config = load_config("config/pythia.yaml")
    jobs = SuiteJobs.from_config(config)
    data = jobs.data
    shards = data.tokenize_shards
    assert len(shards) == 30 == len(data.signature_shards) and len(data.band_groups) == 7
    assert all(s.path.endswith(".jsonl.zst") and s.parts == 1 for s in shards)
    assert [s.heldout_tail for s in shards] == [0] * 29 + [5000]
    node = config["compute"]["node"]
    rows = [r for r in plan_jobs(config) if r["stage"] == "data"]
    counts = Counter(r["rule"] for r in rows)
    assert counts == {
        "download": 30,
        "tokenizer": 1,
        "tokenize": 30,
        "tokenize_merge": 1,
        "dedup_signatures": 30,
        "dedup_buckets": 7,
        "dedup_clusters": 1,
        "deduped_documents": 1,
        "pack_shuffle": 2,
    }
    assert "corpus" not in counts  # no concatenated copy of the Pile
    for r in rows:  # every data job asks for memory, disk and time, and fits one node
        assert 0 < r["mem_mb"] <= min(node["mem_mb"], 64_000), r
        assert r["disk_mb"] > 0 and r["runtime"] >= config["compute"]["min_runtime_minutes"]
    tokenize = data.resources("tokenize")
    assert tokenize["threads"] == config["data"]["workers"]
    assert tokenize["disk_mb"] < 40_000  # a shard's tokens, not the corpus's


def test_a_data_job_larger_than_a_node_is_refused():
    raw = copy.deepcopy(load_config("config/pythia.yaml"))
    raw["compute"]["node"]["mem_mb"] = 4000
    with pytest.raises(
        ConfigError, match=r"data: a dedup_signatures job asks one node for \d+ mem_mb"
    ):
        check_node_fit(SuiteConfig.from_dict(raw))
    raw = copy.deepcopy(load_config("config/config.yaml"))
    raw["data"]["workers"] = 99
    with pytest.raises(ConfigError, match=r"a tokenize job asks one node for 99 cpus.*fewer data"):
        check_node_fit(SuiteConfig.from_dict(raw))


def test_the_embedded_default_tokenizes_byte_ranges():
    config = load_config("config/config.yaml")
    data = SuiteJobs.from_config(config).data
    shards = data.tokenize_shards
    assert [(s.part, s.parts, s.heldout_tail) for s in shards] == [(0, 2, 0), (1, 2, 0)]
    assert all(s.path.endswith("data/corpus/train.jsonl") for s in shards)
    assert len(data.band_groups) == 2 and data.band_groups[-1] == (4, 7)
