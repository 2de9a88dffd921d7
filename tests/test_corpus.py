"""The generated mini-corpus and the jsonl reader."""

import itertools
import json
import re
from collections import defaultdict

import pytest
import zstandard

from workflow.corpus import DOMAINS, CorpusError, generate_corpus, read_jsonl
from workflow.dedup import shingles

SMALL = dict(
    seed=7,
    num_documents=300,
    heldout_documents=40,
    near_duplicate_clusters=12,
    near_duplicate_copies=5,
    near_duplicate_edit_rate=0.02,
)


def _records(path):
    return [json.loads(line) for line in open(path)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    stats = generate_corpus(d / "train.jsonl", d / "heldout.jsonl", **SMALL)
    return d, stats


def test_deterministic_for_a_seed(corpus, tmp_path):
    d, stats = corpus
    again = generate_corpus(tmp_path / "t.jsonl", tmp_path / "h.jsonl", **SMALL)
    assert again == stats
    assert (tmp_path / "t.jsonl").read_bytes() == (d / "train.jsonl").read_bytes()
    assert (tmp_path / "h.jsonl").read_bytes() == (d / "heldout.jsonl").read_bytes()
    other = generate_corpus(tmp_path / "o.jsonl", tmp_path / "p.jsonl", **{**SMALL, "seed": 8})
    assert (tmp_path / "o.jsonl").read_bytes() != (d / "train.jsonl").read_bytes()
    assert other["documents"] == stats["documents"]


def test_stats_and_records(corpus):
    d, stats = corpus
    train = _records(d / "train.jsonl")
    assert len(train) == stats["documents"] == 300
    assert set(stats["documents_per_domain"]) == set(DOMAINS)
    assert sum(stats["documents_per_domain"].values()) == 300
    assert stats["words"] == sum(len(r["text"].split()) for r in train)
    assert stats["world_facts"] >= 150
    assert [r["meta"]["id"] for r in train] == list(range(300))
    assert all(r["text"].strip() for r in train)


def test_near_duplicate_clusters(corpus):
    d, stats = corpus
    members = defaultdict(list)
    for i, r in enumerate(_records(d / "train.jsonl")):
        if r["meta"]["cluster"] is not None:
            members[r["meta"]["cluster"]].append((i, r["text"]))
    assert len(members) == 12 and stats["documents_in_clusters"] == 60
    assert all(len(m) == 5 for m in members.values())
    # scattered through the corpus, not in a block
    positions = sorted(i for m in members.values() for i, _ in m)
    assert positions[-1] - positions[0] > 150
    edited = 0
    for m in members.values():
        edited += len({t for _, t in m}) > 1
        for (_, a), (_, b) in itertools.combinations(m, 2):
            sa, sb = shingles(a, 5), shingles(b, 5)
            assert len(sa & sb) / len(sa | sb) >= 0.9  # well above the 0.87 dedup threshold
    assert edited >= 6  # near, not only exact, duplicates


def test_heldout_is_new_and_ends_with_a_predictable_word(corpus):
    d, _ = corpus
    train = {r["text"] for r in _records(d / "train.jsonl")}
    heldout = _records(d / "heldout.jsonl")
    assert len(heldout) == 40
    for r in heldout:
        text, target = r["text"], r["meta"]["cloze_target"]
        assert text not in train
        assert text.endswith(target + ".")
        last = re.split(r"(?<=\.) |\n", text)[-1]
        if r["meta"]["domain"] == "arithmetic":
            a, b, c = re.fullmatch(r"(\d+) plus (\d+) is (\d+)\.", last).groups()
            assert int(a) + int(b) == int(c)
        elif r["meta"]["domain"] != "code" or "capital" in last:
            # the answer was given earlier in the document
            assert target in text[: -len(last)], text


def test_config_default_size(tmp_path):
    stats = generate_corpus(
        tmp_path / "t.jsonl",
        tmp_path / "h.jsonl",
        seed=1234,
        num_documents=1000,
        heldout_documents=120,
        near_duplicate_clusters=64,
        near_duplicate_copies=6,
        near_duplicate_edit_rate=0.01,
        sentences_per_document=[3, 9],
    )
    assert stats["documents"] == 1000 and stats["documents_in_clusters"] == 384


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="exceeds num_documents"):
        generate_corpus(tmp_path / "t", tmp_path / "h", **{**SMALL, "num_documents": 20})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- read_jsonl


def _write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_read_jsonl_plain_and_zst(tmp_path):
    lines = [json.dumps({"text": f"doc {i}", "meta": {"i": i}}).encode() for i in range(50)]
    plain = _write(tmp_path / "a.jsonl", lines)
    zst = tmp_path / "a.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    got_plain = list(read_jsonl(plain))
    assert got_plain == list(read_jsonl(zst))
    assert got_plain[3] == (4, {"text": "doc 3", "meta": {"i": 3}})


def test_read_jsonl_skips_empty_and_blank(tmp_path):
    path = _write(
        tmp_path / "a.jsonl",
        [
            b'{"text": "one"}',
            b"",
            b'{"text": ""}',
            b'{"text": "  \\n"}',
            b'{"text": "two"}',
        ],
    )
    counts = {}
    got = list(read_jsonl(path, counts=counts))
    assert [(n, r["text"]) for n, r in got] == [(1, "one"), (5, "two")]
    assert counts == {"empty_skipped": 2}
    assert len(list(read_jsonl(path, skip_empty=False))) == 4


@pytest.mark.parametrize(
    "bad, message",
    [
        (b'{"text": "ok"', r"a\.jsonl:2: not valid JSON"),
        (b'{"text": "caf\xe9"}', r"a\.jsonl:2: not valid UTF-8 \(byte 0xe9"),
        (b'{"meta": {}}', r'a\.jsonl:2: expected an object with a string "text" field'),
        (b'{"text": 5}', r'a\.jsonl:2: expected an object with a string "text" field'),
        (b'["text"]', r"a\.jsonl:2: expected an object"),
    ],
)
def test_read_jsonl_errors_name_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path / "a.jsonl", [b'{"text": "fine"}', bad, b'{"text": "after"}'])
    with pytest.raises(CorpusError, match=message):
        list(read_jsonl(path))


def test_read_jsonl_corrupt_zst(tmp_path):
    path = tmp_path / "a.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)
    with pytest.raises(CorpusError, match=r"a\.jsonl\.zst"):
        list(read_jsonl(path))


def test_read_jsonl_missing(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        list(read_jsonl(tmp_path / "nope.jsonl"))
