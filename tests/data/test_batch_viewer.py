"""batch_viewer returns exactly the rows of the sample file that a training step consumes."""

import json

import numpy as np
import pytest

from workflow.data.batch_viewer import batch_rows, main
from workflow.data.indexed_dataset import MMapIndexedDataset
from workflow.data.pack_shuffle import pack_samples
from workflow.data.tokenize import tokenize_documents
from workflow.data.tokenizer import load_tokenizer, train_bpe

B = 4


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    data = root / "tiny" / "data"
    (data / "tokenizer").mkdir(parents=True)
    src = root / "docs.jsonl"
    texts = [f"Document {i} says that {i} plus 2 is {i + 2}." for i in range(60)]
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    train_bpe([src], 300, data / "tokenizer" / "tokenizer.json")
    tokenize_documents(src, data / "tokenizer" / "tokenizer.json", data / "deduped" / "documents")
    pack_samples(
        data / "deduped" / "documents",
        data / "deduped" / "samples",
        seq_length=12,
        num_samples=10 * B,
        seed=1234,
        global_batch_size=B,
    )
    return root


def test_batch_rows(results):
    prefix = results / "tiny" / "data" / "deduped" / "samples"
    all_rows = MMapIndexedDataset(prefix).get_rows(0, 10 * B)
    np.testing.assert_array_equal(batch_rows(prefix, 0, B), all_rows[:B])
    np.testing.assert_array_equal(batch_rows(prefix, 3, B), all_rows[3 * B : 4 * B])
    # end is inclusive: steps 2, 3, 4 (pythia#186 returned only one row of the last step)
    np.testing.assert_array_equal(batch_rows(prefix, 2, B, end_step=4), all_rows[2 * B : 5 * B])
    np.testing.assert_array_equal(batch_rows(prefix, 9, B), all_rows[9 * B :])
    with pytest.raises(IndexError, match=r"steps 10\.\.10 need rows \[40, 44\).*steps 0\.\.9"):
        batch_rows(prefix, 10, B)
    with pytest.raises(ValueError, match="step <= end_step"):
        batch_rows(prefix, 3, B, end_step=2)


def test_cli_prints_and_saves(results, tmp_path, capsys):
    out = tmp_path / "rows.npy"
    argv = [
        "--run",
        "tiny",
        "--variant",
        "deduped",
        "--step",
        "1",
        "--end",
        "2",
        "--decode",
        "--results-dir",
        str(results),
        "--save",
        str(out),
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = batch_rows(results / "tiny" / "data" / "deduped" / "samples", 1, B, end_step=2)
    np.testing.assert_array_equal(np.load(out), rows)
    assert len(lines) == 2 * 2 * B
    tok = load_tokenizer(results / "tiny" / "data" / "tokenizer" / "tokenizer.json")
    for i, row in enumerate(rows):
        assert lines[2 * i] == f"step{1 + i // B} row{i}: " + " ".join(map(str, row.tolist()))
        assert lines[2 * i + 1] == repr(tok.decode(row.tolist(), skip_special_tokens=False))


def test_cli_errors(results, capsys):
    base = ["--run", "tiny", "--results-dir", str(results)]
    assert main(base + ["--variant", "standard", "--step", "0"]) == 2
    assert "samples.json: no such file" in capsys.readouterr().err
    assert main(base + ["--variant", "deduped", "--step", "99"]) == 2
    assert "steps 99..99 need rows" in capsys.readouterr().err


def test_compare_with_another_sample_file(results, tmp_path, capsys):
    samples = results / "tiny" / "data" / "deduped" / "samples"
    base = ["--run", "tiny", "--variant", "deduped", "--results-dir", str(results)]
    # a byte copy (as the merged released preshuffled data would be): every step identical
    for ext in (".bin", ".idx"):
        (tmp_path / f"same{ext}").write_bytes(samples.with_suffix(ext).read_bytes())
    assert main(base + ["--step", "0", "--end", "9", "--compare", str(tmp_path / "same")]) == 0
    assert "10 of 10 steps identical" in capsys.readouterr().out
    # another seed: another order
    pack_samples(
        results / "tiny" / "data" / "deduped" / "documents",
        tmp_path / "other",
        seq_length=12,
        num_samples=10 * B,
        seed=7,
    )
    assert main(base + ["--step", "2", "--end", "3", "--compare", str(tmp_path / "other")]) == 1
    out = capsys.readouterr().out
    assert "step2: differs" in out and "0 of 2 steps identical" in out
    assert (
        main(base + ["--step", "0", "--batch-size", "8", "--compare", str(tmp_path / "same")]) == 0
    )
    assert "1 of 1 steps identical" in capsys.readouterr().out
