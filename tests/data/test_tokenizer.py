"""BPE training, tokenization into MMapIndexedDataset, and the HF tokenizer files."""

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from workflow.data.corpus import generate_corpus
from workflow.data.indexed_dataset import MMapIndexedDataset
from workflow.data.jsonl import CorpusError, read_jsonl
from workflow.data.tokenize import tokenize_documents
from workflow.data.tokenizer import TokenizerError, load_tokenizer, save_hf_tokenizer, train_bpe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    generate_corpus(
        d / "train.jsonl",
        d / "heldout.jsonl",
        seed=3,
        num_documents=400,
        heldout_documents=10,
        near_duplicate_clusters=5,
        near_duplicate_copies=3,
        near_duplicate_edit_rate=0.01,
    )
    train_bpe([d / "train.jsonl"], 512, d / "tokenizer.json")
    return d


def test_train_bpe_shape_and_determinism(data, tmp_path):
    train_bpe([data / "train.jsonl"], 512, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (data / "tokenizer.json").read_bytes()
    tok = load_tokenizer(data / "tokenizer.json")
    assert tok.get_vocab_size() == 512
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<|padding|>") == 1
    spec = json.loads((data / "tokenizer.json").read_text())
    assert spec["normalizer"]["type"] == "NFC"
    assert spec["pre_tokenizer"] == {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": True,
    }
    assert spec["decoder"]["type"] == "ByteLevel"
    # NFC: a decomposed accent encodes like the composed one; any byte is representable
    assert tok.encode("cafe\u0301").ids == tok.encode("caf\u00e9").ids
    text = "The capital of Veloria is Marrow. Zyxw \u2603!"
    assert tok.decode(tok.encode(text).ids) == text
    assert tok.encode("Marrow").ids[0] != tok.encode(" Marrow").ids[0]  # no prefix space


def test_tokenize_documents(data, tmp_path):
    stats = tokenize_documents(data / "train.jsonl", data / "tokenizer.json", tmp_path / "docs")
    ds = MMapIndexedDataset(tmp_path / "docs")
    tok = load_tokenizer(data / "tokenizer.json")
    texts = [r["text"] for _, r in read_jsonl(data / "train.jsonl")]
    assert stats["documents"] == len(ds) == len(texts) == 400
    assert stats["tokens"] == ds.num_tokens and stats["eod_appended"] == 400
    assert ds.dtype == np.uint16
    for i in (0, 17, 399):
        assert ds[i][-1] == 0  # EOD
        assert 0 not in ds[i][:-1]
        assert tok.decode(ds[i][:-1].tolist()) == unicodedata.normalize("NFC", texts[i])
    tokenize_documents(
        data / "train.jsonl", data / "tokenizer.json", tmp_path / "noeod", append_eod=False
    )
    assert MMapIndexedDataset(tmp_path / "noeod").num_tokens == stats["tokens"] - 400


def test_workers_give_identical_bytes(data, tmp_path):
    # pythia#76: the output must not depend on the number of processes
    args = (data / "train.jsonl", data / "tokenizer.json")
    one = tokenize_documents(*args, tmp_path / "w1", workers=1, batch_docs=7)
    two = tokenize_documents(*args, tmp_path / "w2", workers=2, batch_docs=7)
    assert one == two
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"w1{ext}").read_bytes() == (tmp_path / f"w2{ext}").read_bytes()


def test_byte_range_tasks_give_identical_bytes(data, tmp_path, monkeypatch):
    # workers read their own byte ranges of a plain .jsonl; tiny ranges cut lines everywhere
    from workflow.data import tokenize

    args = (data / "train.jsonl", data / "tokenizer.json")
    one = tokenize_documents(*args, tmp_path / "w1", workers=1)
    monkeypatch.setattr(tokenize, "_RANGE_BYTES", 97)
    many = tokenize_documents(*args, tmp_path / "w2", workers=2)
    assert one == many
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"w1{ext}").read_bytes() == (tmp_path / f"w2{ext}").read_bytes()
    bad = tmp_path / "bad.jsonl"
    lines = (data / "train.jsonl").read_bytes().splitlines(keepends=True)
    bad.write_bytes(b"".join(lines[:40]) + b'{"text": "caf\xe9"}\n' + b"".join(lines[40:]))
    with pytest.raises(CorpusError, match=r"bad\.jsonl:41: not valid UTF-8 \(byte 0xe9"):
        tokenize_documents(bad, data / "tokenizer.json", tmp_path / "bad", workers=2)
    assert not list(tmp_path.glob("bad.*[bx]")) and not list(tmp_path.glob(".bad*"))


def test_empty_documents_are_skipped(data, tmp_path):
    src = tmp_path / "e.jsonl"
    src.write_text("\n".join(json.dumps({"text": t}) for t in ["a b", "", "c d", " "]) + "\n")
    stats = tokenize_documents(src, data / "tokenizer.json", tmp_path / "e")
    assert stats["documents"] == 2 and stats["empty_skipped"] == 2
    assert len(MMapIndexedDataset(tmp_path / "e")) == 2


def test_malformed_input_leaves_no_output(data, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "fine"}\n{"text": broken}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: not valid JSON"):
        tokenize_documents(src, data / "tokenizer.json", tmp_path / "out", workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_vocab_too_large_for_dtype(data, tmp_path):
    vocab = {"<|endoftext|>": 0, "<|padding|>": 1, **{f"w{i}": i + 2 for i in range(70000)}}
    big = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    big.save(str(tmp_path / "big.json"))
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"text": "w1 w69999"}) + "\n")
    with pytest.raises(TokenizerError, match=r"big\.json: vocabulary of 70002 .* uint16"):
        tokenize_documents(src, tmp_path / "big.json", tmp_path / "out", dtype="uint16")
    assert not (tmp_path / "out.bin").exists() and not (tmp_path / "out.idx").exists()
    stats = tokenize_documents(src, tmp_path / "big.json", tmp_path / "out")  # picks int32
    assert stats["dtype"] == "int32"
    assert MMapIndexedDataset(tmp_path / "out")[0].tolist() == [3, 70001, 0]


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(TokenizerError, match="no such tokenizer file"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TokenizerError, match=r"bad\.json: not a valid tokenizer\.json"):
        load_tokenizer(tmp_path / "bad.json")


def test_save_hf_tokenizer_loads_with_autotokenizer(data, tmp_path):
    from transformers import AutoTokenizer

    save_hf_tokenizer(data / "tokenizer.json", tmp_path / "ckpt", model_max_length=64)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    hf = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    text = "The capital of Veloria is Marrow."
    assert hf(text)["input_ids"] == load_tokenizer(data / "tokenizer.json").encode(text).ids
    assert (hf.eos_token_id, hf.bos_token_id, hf.pad_token_id) == (0, 0, 1)
    assert hf.model_max_length == 64


def test_fetch_pretrained_tokenizer_from_offline_cache(data, tmp_path):
    # A hand-built Hub cache: no network. Runs in a subprocess because huggingface_hub reads
    # HF_HUB_OFFLINE and HF_HUB_CACHE when it is imported.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--EleutherAI--gpt-neox-20b"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    shutil.copyfile(data / "tokenizer.json", repo / "snapshots" / commit / "tokenizer.json")
    code = (
        "import sys\n"
        "from workflow.data.tokenizer import TokenizerError, fetch_pretrained_tokenizer as f\n"
        "f('EleutherAI/gpt-neox-20b', 'main', sys.argv[1])\n"
        "try:\n"
        "    f('EleutherAI/absent', 'main', sys.argv[1] + '.x')\n"
        "except TokenizerError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out" / "tokenizer.json"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.read_bytes() == (data / "tokenizer.json").read_bytes()
    assert "EleutherAI/absent@main: cannot get tokenizer.json" in proc.stdout
    assert not Path(str(out) + ".x").exists()
