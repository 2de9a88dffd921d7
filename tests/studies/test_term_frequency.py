"""Term frequency (paper §3.3): operand counts on token ids against the decoded definition,
the arithmetic tasks, Table 4's gap, and the targets in the embedded and paper DAGs."""

import json
import random
import re
from collections import Counter

import numpy as np
import pytest
import yaml
from helpers_checkpoints import _tokenizer_json

from workflow.data.indexed_dataset import write_indexed_dataset
from workflow.studies.term_frequency.config import TermFrequencyError, check_config
from workflow.studies.term_frequency.counts import (
    NUMBER_RE,
    NumberTokens,
    count_numbers,
    count_numbers_reference,
    cumulative_counts,
)
from workflow.studies.term_frequency.evaluate import per_x1_accuracy
from workflow.studies.term_frequency.figure import (
    binned_accuracy,
    frequency_bins,
    plot_frequency_accuracy,
    pythia_bins,
)
from workflow.studies.term_frequency.pythia_counts import (
    TokenBytes,
    clean_up_spaces,
    count_windows,
    decode_rows_as_pythia,
    pythia_window_numbers,
)
from workflow.studies.term_frequency.table import frequency_gap, frequency_table, gap_table
from workflow.studies.term_frequency.tasks import (
    answer_of,
    arithmetic_documents,
    build_arithmetic_tasks,
)

# digits alone, with a leading space, split over tokens, inside a token, next to letters and
# punctuation, with a leading zero, and longer than 5 digits
VOCAB = [
    "a", " the", "Q", ":", "?", " A", "\n", ".", " ", "x", "b1", "1b", "1.2", " 3.", "x7y",
    "1", "2", "3", "4", "5", "9", "0", " 1", " 4", " 51", " 10", "07", " 0", "12", "99",
    "123456", " 5", "-", "(", "é",
]  # fmt: skip


def _reference_on_strings(rows, strings):
    out = []
    for r, row in enumerate(rows):
        text = "".join(strings[i] for i in row)
        for m in NUMBER_RE.finditer(text):
            s = m.group()
            if len(s) <= 5 and (len(s) == 1 or s[0] != "0"):
                out.append((r, int(s)))
    return Counter(out)


def _counted(rows, table):
    r, v = count_numbers(rows, table)
    return Counter(zip(r.tolist(), v.tolist(), strict=True))


def test_numbers_split_over_tokens_rows_and_letters_are_counted_as_decoded():
    table = NumberTokens.from_strings(VOCAB)
    ix = {s: i for i, s in enumerate(VOCAB)}

    def row(*tokens):
        return [ix[t] for t in tokens]

    rows = np.array(
        [
            row(" 4", "9", "5", " the", " 51", "?", "x", "12", "a", " 1", "2", "."),
            row("3", "1.2", "4", " the", "07", " 0", "b1", "1b", " 3.", "x7y", ".", "("),
            row("9", "9", "9", "9", "9", "9", " 5", "é", "5", "4", "-", "\n"),
        ],
        dtype=np.uint16,
    )
    got = _counted(rows, table)
    assert got == _reference_on_strings(rows, VOCAB)
    # " 495", " 51" and the final " 12" (not "x12a": letters around it)
    assert got[(0, 495)] == 1 and got[(0, 51)] == 1 and got[(0, 12)] == 1
    assert (0, 4) not in got and (0, 9) not in got  # parts of 495, not numbers
    assert got[(1, 31)] == 1 and got[(1, 24)] == 1  # "31.24": token "1.2" ends one, starts one
    assert (1, 7) not in got and (1, 1) not in got  # "07" is not 7; x7y, b11b: letters around
    assert (2, 999999) not in got and got[(2, 5)] == 1 and got[(2, 54)] == 1  # 6 digits: none
    # a number at the end of one row and the start of the next are two numbers
    tail = np.array([row("a", " 1", "2"), row("3", "4", "x")], dtype=np.uint16)
    assert _counted(tail, table) == Counter({(0, 12): 1}) == _reference_on_strings(tail, VOCAB)


def test_random_rows_match_the_decoded_count():
    table = NumberTokens.from_strings(VOCAB)
    rng = np.random.default_rng(0)
    digits = np.flatnonzero(table.has_digit)
    for width in (1, 2, 7, 33):
        rows = rng.integers(0, len(VOCAB), size=(300, width))
        mask = rng.random(rows.shape) < 0.6
        rows[mask] = rng.choice(digits, int(mask.sum()))
        assert _counted(rows.astype(np.uint16), table) == _reference_on_strings(rows, VOCAB)


def test_byte_level_tokenizer_matches_decoding_its_rows(tmp_path):
    tok_path = tmp_path / "tokenizer.json"
    tok_path.write_text(_tokenizer_json())
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    text = " ".join(
        f"Q:What is {a} plus {b}? A: {a + b}\n{a}x{b} 0{b} {a * 1000003}"
        for a, b in [(51, 4), (7, 30), (99, 1), (0, 12), (305, 77)]
    )
    ids = tok.encode(text).ids
    rng = np.random.default_rng(1)
    noise = rng.integers(0, tok.get_vocab_size(), size=len(ids))
    stream = np.array(ids * 3 + noise.tolist(), dtype=np.uint16)
    rows = stream[: len(stream) // 17 * 17].reshape(-1, 17)
    table = NumberTokens.from_tokenizer(tok_path)
    assert _counted(rows, table) == Counter(count_numbers_reference(rows, tok_path))
    assert any(len(tok.encode(f" {n}").ids) > 1 for n in (305, 1000003))  # multi-token numbers


def test_token_ids_outside_the_tokenizer_are_refused():
    table = NumberTokens.from_strings(VOCAB)
    for dtype in (np.uint16, np.int32):
        rows = np.array([[1, 2, len(VOCAB) + 3]], dtype=dtype)
        with pytest.raises(TermFrequencyError, match=rf"token id {len(VOCAB) + 3} is outside"):
            count_numbers(rows, table)
    with pytest.raises(TermFrequencyError, match=r"rows must be \(n, L\)"):
        count_numbers(np.array([1, 2, 3]), table)


def _sample_file(tmp_path, rows):
    prefix = tmp_path / "samples"
    write_indexed_dataset(prefix, [np.asarray(r, np.uint16) for r in rows])
    return prefix


def test_cumulative_counts_cover_the_rows_each_step_trained_on(tmp_path):
    tok_path = tmp_path / "tokenizer.json"
    tok_path.write_text(_tokenizer_json())
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    rng = random.Random(3)
    rows = []
    for _ in range(24):
        text = " ".join(f"{rng.choice([3, 7, 42, 99])} plus {rng.randint(1, 9)}" for _ in range(6))
        rows.append((tok.encode(text).ids + [0] * 40)[:40])
    prefix = _sample_file(tmp_path, rows)
    batch, steps, values = 4, [6, 1, 3], list(range(100))
    counts = cumulative_counts(prefix, tok_path, steps, batch, values, chunk_tokens=3 * 40)
    for i, step in enumerate(steps):
        ref = Counter(
            v for _, v in count_numbers_reference(np.array(rows[: step * batch]), tok_path)
        )
        assert counts[i].tolist() == [ref[v] for v in values], step
    assert (counts[0] >= counts[2]).all() and (counts[2] >= counts[1]).all()  # cumulative
    with pytest.raises(TermFrequencyError, match=r"step 7 needs rows \[0, 28\).*has only 24"):
        cumulative_counts(prefix, tok_path, [1, 7], batch, values)


def test_tokenizer_that_is_not_byte_level_is_refused(tmp_path):
    spec = json.loads(_tokenizer_json())
    spec["decoder"] = {"type": "WordPiece", "prefix": "##", "cleanup": True}
    path = tmp_path / "wp.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(TermFrequencyError, match="wp.json: decoder 'WordPiece'"):
        NumberTokens.from_tokenizer(path)
    with pytest.raises(TermFrequencyError, match="does not exist"):
        NumberTokens.from_tokenizer(tmp_path / "missing.json")


# ------------------------------------------------------------- Pythia's count (protocol pythia)

# Hand-computed from Pythia's rule (run_freq_count.py): line = " " + row; a window starts at
# every " <1-5 digits> " followed by 1-3 words (word characters or punctuation) each followed by
# whitespace, then 1-5 digits; every number of every window counts once.
PYTHIA_ROWS = [
    (" 12 apples and 7 pears", {12: 1, 7: 1}),  # one window, " 12 apples and 7"
    ("1 2 3 4", {1: 1, 2: 2, 3: 2, 4: 2}),  # " 1 2 3 4" and " 2 3 4"; " 3 4" has no word
    ("year 1999 was 2000", {1999: 1, 2000: 1}),
    ("no numbers", {}),
    ("3 plus 4 is 7.", {3: 1, 4: 2, 7: 2}),  # " 3 plus 4 is 7" and " 4 is 7"
    ("5 apples", {}),  # a number with no second number within 3 words: not counted
    ("007 x 3", {7: 1, 3: 1}),  # leading zeros dropped (int)
    ("123456 and 7", {}),  # 6 digits cannot start a window, so 7 is in none
    ("1 2 3 4 5 6", {1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 3}),  # at most 3 words between
    ("Q:What is 3 plus 4? A: 7", {3: 1, 4: 1, 7: 1}),  # the embedded corpus's line
    ("Q:What is 3 plus 4? A:7", {3: 1, 4: 1}),  # Pythia's format: "A:7" is no window end
    ("5 , 6 and 1 2", {5: 1, 6: 2, 1: 2, 2: 1}),  # before clean-up (see below)
]


@pytest.mark.parametrize("text, expected", PYTHIA_ROWS)
def test_pythia_window_count_of_hand_written_rows(text, expected):
    assert Counter(pythia_window_numbers(text)) == Counter(expected)


def test_count_windows_gives_row_and_value_per_count():
    rows, values = count_windows([t for t, _ in PYTHIA_ROWS])
    got = Counter(zip(rows.tolist(), values.tolist(), strict=True))
    want = Counter({(r, v): n for r, (_, e) in enumerate(PYTHIA_ROWS) for v, n in e.items()})
    assert got == want
    empty = count_windows(["no numbers", ""])
    assert empty[0].size == empty[1].size == 0


def test_rows_decode_as_transformers_did_for_pythia(tmp_path):
    # GPTNeoXTokenizerFast.batch_decode then: special tokens kept, clean_up_tokenization_spaces
    assert clean_up_spaces("5 , 6 and 1 2 . Is it ? I don 't , it 's") == (
        "5, 6 and 1 2. Is it? I don 't, it's"
    )
    tok_path = tmp_path / "tokenizer.json"
    tok_path.write_text(_tokenizer_json())
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    token_bytes = TokenBytes.from_tokenizer(tok_path)
    rows = np.array([(tok.encode("5 , 6 and 1 2").ids + [0] * 30)[:30]])
    (text,) = decode_rows_as_pythia(rows, token_bytes)
    assert text.startswith("5, 6 and 1 2<|endoftext|>")
    assert Counter(pythia_window_numbers(text)) == Counter({6: 1, 1: 1, 2: 1})  # 5 is out
    # the vectorised decode is the tokenizer's, broken UTF-8 and special tokens included
    noise = np.random.default_rng(0).integers(0, tok.get_vocab_size(), size=(300, 37))
    plain = tok.decode_batch(noise.tolist(), skip_special_tokens=False)
    assert token_bytes.decode(noise, block_tokens=100) == plain
    assert any("\ufffd" in t for t in plain) and any("<|endoftext|>" in t for t in plain)
    with pytest.raises(TermFrequencyError, match="token id 300 is outside"):
        token_bytes.decode(np.array([[1, 300]]))


def test_cumulative_counts_with_pythias_protocol(tmp_path):
    tok_path = tmp_path / "tokenizer.json"
    tok_path.write_text(_tokenizer_json())
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    # even rows "3 plus 4 is 7." (3: 1, 4: 2, 7: 2), odd rows "5 , 6 and 1 2" counted after
    # the clean-up as "5, 6 and 1 2" (6, 1, 2 once each); padded with <|endoftext|>
    texts = ["3 plus 4 is 7.", "5 , 6 and 1 2"]
    rows = [(tok.encode(texts[i % 2]).ids + [0] * 30)[:30] for i in range(24)]
    prefix = _sample_file(tmp_path, rows)
    batch, steps, values = 4, [6, 1, 3], list(range(10))
    counts = cumulative_counts(
        prefix, tok_path, steps, batch, values, chunk_tokens=3 * 30, protocol="pythia"
    )
    for i, step in enumerate(steps):
        half = step * batch // 2
        want = Counter({3: half, 4: 2 * half, 7: 2 * half, 6: half, 1: half, 2: half})
        assert counts[i].tolist() == [want[v] for v in values], step
    embedded = cumulative_counts(prefix, tok_path, [1], batch, values)
    assert embedded[0].tolist() == [0, 2, 2, 2, 2, 2, 2, 2, 0, 0]  # every number once
    with pytest.raises(TermFrequencyError, match="unknown protocol 'razeghi'"):
        cumulative_counts(prefix, tok_path, [1], batch, values, protocol="razeghi")


# ------------------------------------------------------------------------------------ tasks


def test_pythia_prompts_are_lm_eval_03_few_shot_contexts():
    # Pythia's doc_to_text "Q:What is {x1} plus {x2}? A:", doc_to_target "{y}" (no space),
    # lm-eval 0.3's fewshot_context: examples joined by "\n\n", then "\n\n" and the question
    docs = arithmetic_documents("plus", [3, 5], [1, 2], 2, seed=0, protocol="pythia")
    assert [d["prompt"] for d in docs[:2]] == [
        "Q:What is 5 plus 1? A:6\n\nQ:What is 5 plus 2? A:7\n\nQ:What is 3 plus 1? A:",
        "Q:What is 5 plus 2? A:7\n\nQ:What is 5 plus 1? A:6\n\nQ:What is 3 plus 2? A:",
    ]
    assert docs[1]["answer"] == "5"
    times = arithmetic_documents("times", [3, 5], [1, 2], 2, seed=0, protocol="pythia")
    assert times[2]["prompt"] == (
        "Q:What is 3 times 1? A:3\n\nQ:What is 3 times 2? A:6\n\nQ:What is 5 times 1? A:"
    )
    zero = arithmetic_documents("times", [3, 5], [1, 2], 0, seed=0, protocol="pythia")
    assert [d["prompt"] for d in zero] == [
        "Q:What is 3 times 1? A:",
        "Q:What is 3 times 2? A:",
        "Q:What is 5 times 1? A:",
        "Q:What is 5 times 2? A:",
    ]
    # the embedded default: the same examples in the corpus's format, one per line
    embedded = arithmetic_documents("plus", [3, 5], [1, 2], 2, seed=0)
    assert embedded[1]["prompt"] == (
        "Q:What is 5 plus 2? A: 7\nQ:What is 5 plus 1? A: 6\nQ:What is 3 plus 2? A:"
    )
    assert embedded == arithmetic_documents("plus", [3, 5], [1, 2], 2, 0, "embedded")
    with pytest.raises(TermFrequencyError, match="unknown protocol 'razeghi'"):
        arithmetic_documents("plus", [3, 5], [1, 2], 2, seed=0, protocol="razeghi")


def test_pythia_task_files_score_as_pythia_did(tmp_path):
    build_arithmetic_tasks(
        tmp_path / "p", operations=["plus"], x1=[0, 4], x2=[1, 2], shots=[2], protocol="pythia"
    )
    build_arithmetic_tasks(tmp_path / "e", operations=["plus"], x1=[0, 4], x2=[1, 2], shots=[2])
    name = "term_frequency_plus_2shot"
    docs = [json.loads(x) for x in (tmp_path / "p" / f"{name}.jsonl").read_text().splitlines()]
    assert all(re.fullmatch(r"(Q:What is \d+ plus \d+\? A:\d+\n\n){2}Q:What is \d+ plus \d+\? A:",
                            d["prompt"]) for d in docs)  # fmt: skip
    # greedy until a newline, the first 1-5 digit number by exact match: as the embedded task
    spec_p = yaml.safe_load((tmp_path / "p" / f"{name}.yaml").read_text())
    spec_e = yaml.safe_load((tmp_path / "e" / f"{name}.yaml").read_text())
    spec_p.pop("dataset_kwargs"), spec_e.pop("dataset_kwargs")
    assert spec_p == spec_e


def test_shots_never_share_x1_and_answers_are_right():
    x1, x2 = list(range(0, 10)), list(range(1, 4))
    for op, f in (("plus", int.__add__), ("times", int.__mul__)):
        docs = arithmetic_documents(op, x1, x2, shots=4, seed=5)
        assert len(docs) == len(x1) * len(x2)
        for d in docs:
            lines = d["prompt"].split("\n")
            assert len(lines) == 5 and lines[-1] == f"Q:What is {d['x1']} {op} {d['x2']}? A:"
            assert d["answer"] == str(f(d["x1"], d["x2"]))
            shots = [re.fullmatch(rf"Q:What is (\d+) {op} (\d+)\? A: (\d+)", s) for s in lines[:-1]]
            assert all(shots)
            pairs = [(int(m[1]), int(m[2])) for m in shots]
            assert len(set(pairs)) == 4 and all(a != d["x1"] and a in x1 for a, _ in pairs)
            assert all(int(m[3]) == f(int(m[1]), int(m[2])) for m in shots)
    assert arithmetic_documents("plus", x1, x2, 2, seed=5) == arithmetic_documents(
        "plus", x1, x2, 2, seed=5
    )  # seeded


def test_task_files_are_lm_eval_generate_until_tasks(tmp_path):
    counts = build_arithmetic_tasks(
        tmp_path, operations=["times"], x1=[0, 4], x2=[1, 2], shots=[0, 2], max_new_tokens=5
    )
    assert counts == {"term_frequency_times_0shot": 10, "term_frequency_times_2shot": 10}
    spec = yaml.safe_load((tmp_path / "term_frequency_times_2shot.yaml").read_text())
    assert spec["output_type"] == "generate_until"
    assert spec["generation_kwargs"] == {
        "until": ["\n"],
        "max_gen_toks": 5,
        "do_sample": False,
        "temperature": 0.0,
    }
    assert spec["dataset_kwargs"]["data_files"]["test"] == str(
        (tmp_path / "term_frequency_times_2shot.jsonl").resolve()
    )
    first = json.loads((tmp_path / "term_frequency_times_0shot.jsonl").read_text().split("\n")[0])
    assert first == {"x1": 0, "x2": 1, "prompt": "Q:What is 0 times 1? A:", "answer": "0"}


def test_answer_is_the_first_number_of_at_most_five_digits():
    assert answer_of(" 54\nQ:What") == "54"
    assert answer_of(" the answer is 1234567") == "12345"
    assert answer_of(" x12y 3") == "12"
    assert answer_of(" none") is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(operation="minus", shots=0), "unknown operation 'minus'"),
        (dict(operation="plus", shots=-1), "shots must be >= 0"),
        (dict(operation="plus", shots=100), "100 shots but only 6 examples"),
    ],
)
def test_bad_task_settings_are_refused(kwargs, message):
    with pytest.raises(TermFrequencyError, match=message):
        arithmetic_documents(x1_values=[1, 2, 3, 4], x2_values=[1, 2], seed=0, **kwargs)


def test_per_x1_accuracy_from_logged_samples():
    samples = [
        {"doc": {"x1": 3, "x2": 1}, "exact_match": 1.0},
        {"doc": {"x1": 3, "x2": 2}, "exact_match": 0.0},
        {"doc": {"x1": 1, "x2": 1}, "exact_match": 1.0},
    ]
    assert per_x1_accuracy(samples) == {1: (1, 1), 3: (1, 2)}


# ----------------------------------------------------------------------------- table, figure


def test_gap_is_top_minus_bottom_tenth_times_100():
    counts = np.arange(20)  # x1 with counts 0..19: bottom 2 = counts 0, 1; top 2 = 18, 19
    acc = np.zeros(20)
    acc[[18, 19]] = [1.0, 0.5]
    acc[[0, 1]] = [0.25, 0.0]
    assert frequency_gap(acc, counts) == pytest.approx(100 * (0.75 - 0.125))
    assert frequency_gap(acc[::-1], counts[::-1]) == pytest.approx(62.5)  # order-free
    with pytest.raises(TermFrequencyError, match="fraction"):
        frequency_gap(acc, counts, fraction=0.7)
    with pytest.raises(TermFrequencyError, match="equal-length"):
        frequency_gap(acc, counts[:3])


def test_table_joins_counts_and_bins_average_accuracy():
    import pandas as pd

    per_x1 = {"term_frequency_plus_0shot": {"0": [1, 2], "1": [0, 2], "2": [2, 2]}}
    counts = pd.DataFrame({"step": [4] * 3, "x1": [0, 1, 2], "count": [10, 0, 1000]})
    table = frequency_table([("m", 4, {"per_x1": per_x1})], counts)
    assert table["accuracy"].tolist() == [0.5, 0.0, 1.0]
    assert table["count"].tolist() == [10, 0, 1000]
    assert set(table[["operation", "shots"]].itertuples(index=False)) == {("plus", 0)}
    gap = gap_table(table, fraction=0.34)  # 1 of 3 x1: count 1000 (acc 1) minus count 0 (acc 0)
    assert gap["gap"].tolist() == [100.0]
    edges = frequency_bins(table["count"], 2)
    x, y, n = binned_accuracy(table["accuracy"], table["count"], edges)
    assert y.tolist() == [0.5, 1.0] and n.tolist() == [1, 1]  # count 0 is off the log axis
    with pytest.raises(TermFrequencyError, match="no operand count"):
        frequency_table([("m", 8, {"per_x1": per_x1})], counts)


def test_pythia_bins_are_fixed_and_right_closed():
    edges = pythia_bins()
    assert np.array_equal(edges, np.logspace(5, np.log10(2e8), 20))
    assert len(edges) == 20 and edges[0] == 1e5 and edges[-1] == pytest.approx(2e8)
    # pandas.cut's (lo, hi] bins, drawn at the left edge as an integer (Pythia's labels)
    counts = [edges[0], edges[1], edges[1] + 1, 3e8, 0]
    x, y, n = binned_accuracy([1.0, 0.5, 0.0, 1.0, 1.0], counts, edges, "pythia")
    assert x.tolist() == [100000, int(edges[1])] and y.tolist() == [0.5, 0.0]
    assert n.tolist() == [1, 1]  # 1e5 itself, 3e8 and 0 fall outside
    x, y, n = binned_accuracy([1.0, 0.5, 0.0, 1.0, 1.0], counts, edges)  # embedded: [lo, hi)
    assert n.tolist() == [1, 2] and y.tolist() == [1.0, 0.25]


def test_pythia_figure_uses_the_fixed_bins(tmp_path):
    import pandas as pd

    rows = [
        ("70m", step, "plus", 16, x1, 1, 2, acc, count)
        for step, acc in [(13000, 0.5), (39000, 1.0)]
        for x1, count in [(0, 2e5), (1, 3e5), (2, 5e7), (3, 10)]
    ]
    table = pd.DataFrame(
        rows,
        columns=["size", "step", "operation", "shots", "x1", "correct", "documents",
                 "accuracy", "count"],
    )  # fmt: skip
    kw = dict(operation="plus", shots=16, sizes_order=["70m"], num_bins=3)
    fig = plot_frequency_accuracy(
        table, tmp_path / "p.pdf", tmp_path / "p.png", **kw, protocol="pythia"
    )
    ax = fig.axes[0]
    edges = pythia_bins()  # 1e5 * 2000 ** (i / 19): 1e5, 1.49e5, 2.23e5, 3.33e5, ...
    assert edges[1] < 2e5 <= edges[2] < 3e5 <= edges[3] and edges[15] < 5e7 <= edges[16]
    want = [int(edges[1]), int(edges[2]), int(edges[15])]  # count 10 is below 1e5: left out
    assert ax.lines[0].get_xdata().tolist() == want
    assert ax.get_ylim() == (0.0, 1.0)
    assert (tmp_path / "p.pdf").stat().st_size and (tmp_path / "p.png").stat().st_size
    fig = plot_frequency_accuracy(table, tmp_path / "e.pdf", tmp_path / "e.png", **kw)
    assert len(fig.axes[0].lines[0].get_xdata()) == 3  # embedded: 3 bins over 10..5e7


def _tf(**over):
    tf = dict(
        steps=[2, 4], variant="deduped", operations=["plus"], x1=[0, 9], x2=[1, 2],
        shots=[0, 2], figure_shots=None, table_shots=[],
    )  # fmt: skip
    return {**tf, **over}


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(steps=[3]), r"term_frequency.steps: \[3\] are not checkpoints"),
        (dict(variant="standard"), "term_frequency.variant: 'standard' is not one of"),
        (dict(x2=[5, 1]), r"term_frequency.x2 must be \[lo, hi\]"),
        (dict(figure_shots=16), "term_frequency.figure_shots: 16 is not in shots"),
        (dict(table_shots=[0, 4]), "term_frequency.table_shots"),
        (dict(operations=["minus"]), "term_frequency.operations: unknown 'minus'"),
        (dict(protocol="razeghi"), "term_frequency.protocol: 'razeghi' is not one of"),
    ],
)
def test_bad_config_is_refused_naming_the_key(over, message):
    check_config(_tf(), schedule=[0, 1, 2, 4], variants=["deduped"])
    with pytest.raises(TermFrequencyError, match=message):
        check_config(_tf(**over), schedule=[0, 1, 2, 4], variants=["deduped"])


# ------------------------------------------------------------------------------------ DAGs
