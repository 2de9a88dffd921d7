"""The generated mini-corpus and the jsonl reader."""

import itertools
import json
import re
from collections import Counter, defaultdict

import pytest
import zstandard

from workflow.data.corpus import generate_corpus
from workflow.data.dedup import deduplicate
from workflow.data.dedup_signatures import shingles
from workflow.data.domains import DOMAINS
from workflow.data.jsonl import CorpusError, read_jsonl
from workflow.data.planted import OCCUPATIONS, memorized_passages

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
    with pytest.raises(ValueError, match="memorized_sequences x memorized_repeats"):
        generate_corpus(tmp_path / "t", tmp_path / "h", **{**SMALL, "memorized_repeats": 20})
    with pytest.raises(ValueError, match="stereotype_skew"):
        generate_corpus(tmp_path / "t", tmp_path / "h", **{**SMALL, "stereotype_skew": 1.5})
    with pytest.raises(ValueError, match="operand_zipf_exponent"):
        generate_corpus(tmp_path / "t", tmp_path / "h", **{**SMALL, "operand_zipf_exponent": -1})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- planted phenomena
# Each is measured here from the written jsonl with its own regular expressions, independently
# of the generator's stats, then compared with them.

# A corpus of the tiny suite's size and shape (config/config.yaml): 20 passages x 8 repeats.
PLANTED = dict(
    seed=1234,
    num_documents=1560,
    heldout_documents=20,
    near_duplicate_clusters=122,
    near_duplicate_copies=6,
    near_duplicate_edit_rate=0.01,
    memorized_sequences=20,
    memorized_repeats=8,
    operand_zipf_exponent=1.1,
    stereotype_skew=0.8,
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    stats = generate_corpus(d / "train.jsonl", d / "heldout.jsonl", **PLANTED)
    return d, stats


def test_memorized_passages_are_repeated(planted):
    d, stats = planted
    train = _records(d / "train.jsonl")
    passages = stats["memorized"]["passages"]
    assert passages == memorized_passages(1234, 20)
    assert len(set(passages)) == 20
    assert all(56 <= len(p.split()) <= 80 for p in passages)
    hosts = defaultdict(list)
    for i, r in enumerate(train):
        for pid in r["meta"]["memorized"]:
            hosts[pid].append(i)
    assert sorted(hosts) == list(range(20))
    for pid, passage in enumerate(passages):
        occurrences = sum(r["text"].count(passage) for r in train)
        assert occurrences == len(hosts[pid]) == 8 == stats["memorized"]["occurrences"][pid]
        # in different documents, none a near-duplicate copy, scattered through the corpus
        assert all(passage in train[i]["text"] for i in hosts[pid])
        assert all(train[i]["meta"]["cluster"] is None for i in hosts[pid])
        assert len({train[i]["text"] for i in hosts[pid]}) == 8
        assert max(hosts[pid]) - min(hosts[pid]) > 300
        # a minority of each host: at least half as many other words
        assert all(
            2 * (len(train[i]["text"].split()) - len(passage.split())) >= len(passage.split())
            for i in hosts[pid]
        )
    assert stats["memorized"]["total_occurrences"] == 160
    heldout = [r["text"] for r in _records(d / "heldout.jsonl")]
    assert not any(p in t for p in passages for t in heldout)


def test_memorized_passages_survive_dedup(planted):
    d, _ = planted
    result = deduplicate(d / "train.jsonl", threshold=0.87, num_perm=128, shingle_size=5, seed=1)
    kept = set(result.kept_ids)
    hosts = [i for i, r in enumerate(_records(d / "train.jsonl")) if r["meta"]["memorized"]]
    assert len(hosts) == 160 and all(i in kept for i in hosts)
    assert len(kept) < 1560 - 500  # while the planted clusters are collapsed


ARITH = re.compile(r"(\d+) (plus|times) (\d+)(?: is|\? A:) (\d+)")


def test_arithmetic_operands_follow_a_zipf_law(planted):
    d, stats = planted
    x1, x2, ops = Counter(), Counter(), Counter()
    for r in _records(d / "train.jsonl"):
        for a, op, b, y in ARITH.findall(r["text"]):
            a, b, y = int(a), int(b), int(y)
            if r["meta"]["cluster"] is None:  # copies may have an edited word
                assert y == (a + b if op == "plus" else a * b)
            assert 0 <= a <= 99 and 1 <= b <= 50
            x1[a] += 1
            x2[b] += 1
            ops[op] += 1
    s = stats["arithmetic"]
    assert s["statements"] == sum(ops.values()) >= 1000
    assert (s["plus"], s["times"]) == (ops["plus"], ops["times"])
    assert min(ops.values()) > 0.4 * s["statements"]
    assert s["x1_counts"] == {str(k): c for k, c in sorted(x1.items())}
    assert (s["x1_max_count"], s["x1_min_count"], s["x1_distinct"]) == (
        max(x1.values()),
        min(x1.values()),
        len(x1),
    )
    # frequencies span orders of magnitude, over most of the range
    assert max(x1.values()) >= 20 * min(x1.values())
    assert max(x2.values()) >= 20 * min(x2.values())
    assert len(x1) >= 80
    # ... and are not a function of magnitude (the ranks are a seeded permutation)
    top = [k for k, _ in x1.most_common(10)]
    assert any(k >= 50 for k in top) and any(k < 50 for k in top)


def test_uniform_operands_with_exponent_zero(tmp_path):
    stats = generate_corpus(
        tmp_path / "t", tmp_path / "h", **{**SMALL, "operand_zipf_exponent": 0.0}
    )
    counts = stats["arithmetic"]["x1_counts"].values()
    assert max(counts) < 5 * (sum(counts) / 100)


OCCUPATION = re.compile(
    r"\b[Tt]he (\w+) (?:said that (he|she) |lost (his|her) |and often visit (him|her)\.)"
)


def test_occupation_pronouns_have_the_planted_skew(tmp_path):
    params = {
        **PLANTED,
        "num_documents": 3000,
        "near_duplicate_clusters": 0,
        "memorized_sequences": 0,
    }
    stats = generate_corpus(tmp_path / "t.jsonl", tmp_path / "h.jsonl", **params)
    pairs = Counter()
    for r in _records(tmp_path / "t.jsonl"):
        for occ, *pronouns in OCCUPATION.findall(r["text"]):
            if occ in OCCUPATIONS:
                pro = "".join(pronouns)
                pairs[occ, "masculine" if pro in ("he", "him", "his") else "feminine"] += 1
    total = sum(pairs.values())
    stereotypical = sum(c for (occ, g), c in pairs.items() if OCCUPATIONS[occ] == g)
    s = stats["occupations"]
    assert (s["sentences"], s["stereotypical"]) == (total, stereotypical)
    assert total >= 1000
    assert abs(stereotypical / total - 0.8) <= 0.05
    assert abs(s["stereotypical_fraction"] - 0.8) <= 0.05
    # both stereotypes, both pronouns
    for gender in ("masculine", "feminine"):
        assert sum(c for (occ, g), c in pairs.items() if g == gender) > 100
        assert sum(c for (occ, g), c in pairs.items() if OCCUPATIONS[occ] == gender) > 100
    # every form the Pythia intervention swaps appears
    text = " ".join(r["text"] for r in _records(tmp_path / "t.jsonl"))
    for word in ("he", "him", "his", "she", "her"):
        assert f" {word} " in text or f" {word}." in text


def test_occupation_subset_sentences_and_shapes(tmp_path):
    """A tiny suite can plant fewer occupations, more sentences per document and the shapes
    whose pronoun follows the occupation; the stats count them all."""
    from workflow.data.planted import occupation_subset

    params = {**PLANTED, "num_documents": 600, "near_duplicate_clusters": 0}
    one = generate_corpus(tmp_path / "a.jsonl", tmp_path / "ah.jsonl", **params)["occupations"]
    s = generate_corpus(
        tmp_path / "t.jsonl",
        tmp_path / "h.jsonl",
        **params,
        occupations=4,
        occupation_sentences=3,
        occupation_templates=["met", "asked"],
    )["occupations"]
    planted = {o for o, c in s["per_occupation"].items() if c["masculine"] + c["feminine"]}
    assert planted == set(occupation_subset(4))
    assert {g for g in (OCCUPATIONS[o] for o in occupation_subset(4))} == {"masculine", "feminine"}
    assert s["sentences"] > 2 * one["sentences"]
    text = (tmp_path / "t.jsonl").read_text()
    assert "When I met the " in text and " said that he would" not in text
    assert abs(s["stereotypical_fraction"] - 0.8) <= 0.06
    for bad, match in (
        ({"occupation_templates": ["nope"]}, "occupation_templates"),
        ({"occupation_sentences": 0}, "occupation_sentences"),
        ({"occupations": 1}, "occupations must be >= 2"),
    ):
        with pytest.raises(ValueError, match=match):
            generate_corpus(tmp_path / "x.jsonl", tmp_path / "xh.jsonl", **params, **bad)


def test_planted_skew_on_the_config_corpus(planted):
    _, stats = planted
    s = stats["occupations"]
    assert s["sentences"] >= 500
    assert abs(s["stereotypical_fraction"] - 0.8) <= 0.05
    unbiased = generate_corpus(
        *(planted[0] / n for n in ("u.jsonl", "uh.jsonl")), **{**SMALL, "stereotype_skew": 0.5}
    )["occupations"]
    assert abs(unbiased["stereotypical_fraction"] - 0.5) <= 0.1


def test_domain_weights(tmp_path):
    """`domain_weights` sets the share of documents per domain (the embedded default makes half
    of them arithmetic for the term-frequency study); the default weights are DOMAIN_WEIGHTS,
    byte for byte, and a bad mapping is refused with the domains it lacks or does not know."""
    from workflow.data.domains import DOMAIN_WEIGHTS

    params = {**PLANTED, "num_documents": 600, "near_duplicate_clusters": 0}
    base = generate_corpus(tmp_path / "a.jsonl", tmp_path / "ah.jsonl", **params)
    same = generate_corpus(
        tmp_path / "b.jsonl",
        tmp_path / "bh.jsonl",
        **params,
        domain_weights=dict(zip(DOMAINS, DOMAIN_WEIGHTS, strict=True)),
    )
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert base == same
    heavy = {"encyclopedic": 0.2, "prose": 0.15, "dialogue": 0.1, "code": 0.05, "arithmetic": 0.5}
    s = generate_corpus(tmp_path / "t.jsonl", tmp_path / "h.jsonl", **params, domain_weights=heavy)
    per = s["documents_per_domain"]
    assert abs(per["arithmetic"] / sum(per.values()) - 0.5) < 0.06
    assert s["arithmetic"]["statements"] > 2.5 * base["arithmetic"]["statements"]
    assert s["memorized"]["occurrences"] == base["memorized"]["occurrences"]
    for bad, match in (
        ({**heavy, "poetry": 1.0}, r"unknown: \['poetry'\]"),
        ({k: v for k, v in heavy.items() if k != "code"}, r"missing: \['code'\]"),
        ({**heavy, "code": -1}, ">= 0"),
        ({"encyclopedic": 0, "prose": 0, "dialogue": 0, "code": 1, "arithmetic": 0}, "running"),
    ):
        with pytest.raises(ValueError, match=match):
            generate_corpus(
                tmp_path / "x.jsonl", tmp_path / "xh.jsonl", **params, domain_weights=bad
            )


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
