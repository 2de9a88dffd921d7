"""Case 6: bad input at every boundary, one test each. Each must fail before any work with one
clear line that names the problem (and the file or key where it is)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import REL_CONFIG, RUN, SIZE, TARGETS, VARIANT, Workdir

from workflow.core.config import ConfigError, SuiteConfig, load_config, validate_config
from workflow.data.indexed_dataset import IndexedDatasetError, MMapIndexedDataset
from workflow.data.jsonl import CorpusError
from workflow.data.tokenize import tokenize_documents
from workflow.data.tokenizer import TokenizerError, train_bpe
from workflow.train.checkpoint import load_hf_weights
from workflow.train.data import check_vocab
from workflow.train.errors import TrainingError


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def _dry_run(tmp_path, rel_env, text: str):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    proc = Workdir(tmp_path / "wd", cfg, rel_env).snakemake(*TARGETS, "-n")
    proc.out = proc.stdout + proc.stderr  # Snakemake prints errors on either
    return proc


def _config(edit) -> str:
    cfg = yaml.safe_load(REL_CONFIG.read_text())
    edit(cfg)
    return yaml.safe_dump(cfg)


def test_malformed_yaml(tmp_path, rel_env):
    text = "run: rel\nvariants: [standard\n"
    proc = _dry_run(tmp_path, rel_env, text)
    # Snakemake reads --configfile itself, before the workflow: its own one line
    assert proc.returncode != 0 and "Config file is not valid JSON or YAML" in proc.out
    (tmp_path / "bad.yaml").write_text(text)  # our loader (CLI tools) adds file:line:column
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bad.yaml")
    assert f"{tmp_path / 'bad.yaml'}:3:1: not valid YAML: expected ',' or ']'" in _one_line(err)


def test_unknown_key(tmp_path, rel_env):
    proc = _dry_run(tmp_path, rel_env, _config(lambda c: c["training"].update(sequence_length=64)))
    assert proc.returncode != 0
    assert "training: Additional properties are not allowed ('sequence_length' was unexpected)" in (
        proc.out
    )
    assert f"invalid {tmp_path / 'bad.yaml'}" in proc.out


def test_wrong_type(tmp_path, rel_env):
    proc = _dry_run(tmp_path, rel_env, _config(lambda c: c["training"].update(train_iters="8")))
    assert proc.returncode != 0
    assert "training.train_iters: '8' is not of type 'integer'" in proc.out


def test_missing_file(tmp_path, baseline):
    wd, _ = baseline
    with pytest.raises(CorpusError) as err:
        tokenize_documents(
            tmp_path / "train.jsonl", wd.run / "data/tokenizer/tokenizer.json", tmp_path / "d"
        )
    assert _one_line(err) == f"{tmp_path / 'train.jsonl'}: no such file"
    with pytest.raises(IndexedDatasetError) as err:
        MMapIndexedDataset(tmp_path / "samples")
    assert _one_line(err) == f"{tmp_path / 'samples.bin'}: no such file"


def test_non_utf8_text(tmp_path):
    corpus = tmp_path / "train.jsonl"
    corpus.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9 au lait"}\n')
    with pytest.raises(CorpusError) as err:
        train_bpe(corpus, 300, tmp_path / "tokenizer.json")
    assert _one_line(err) == f"{corpus}:2: not valid UTF-8 (byte 0xe9 at column 14)"


def test_empty_corpus(tmp_path, baseline):
    corpus = tmp_path / "train.jsonl"
    corpus.write_text('{"text": ""}\n')
    with pytest.raises(TokenizerError) as err:
        train_bpe(corpus, 300, tmp_path / "tokenizer.json")
    assert "no documents with text (empty corpus)" in _one_line(err)
    assert not (tmp_path / "tokenizer.json").exists()
    wd, _ = baseline
    with pytest.raises(CorpusError) as err:
        tokenize_documents(corpus, wd.run / "data/tokenizer/tokenizer.json", tmp_path / "docs")
    assert _one_line(err) == f"{corpus}: no documents with text (empty corpus)"
    assert not list(tmp_path.glob("docs*")) and not list(tmp_path.glob(".docs*"))


def test_tokenizer_of_another_vocabulary(tmp_path, baseline):
    wd, _ = baseline
    other = tmp_path / "tokenizer.json"
    train_bpe(wd.run / "data/corpus/train.jsonl", 300, other)  # the suite's has 512
    prefix = wd.run / "data/standard/samples"
    with pytest.raises(TrainingError) as err:
        check_vocab(MMapIndexedDataset(prefix), prefix, other, 300, first_step=1, batch=4)
    assert "a vocabulary of 300 tokens, but" in _one_line(err)
    assert "samples.json says the samples were tokenized with 512" in str(err.value)


def test_checkpoint_of_another_architecture(baseline):
    from workflow.train.model import build_model

    wd, _ = baseline
    cfg = yaml.safe_load(REL_CONFIG.read_text())
    cfg["models"][SIZE]["hidden_size"] = 64  # the checkpoint has 32
    suite = SuiteConfig.from_dict(validate_config(cfg))
    model = build_model(suite.models[SIZE], suite.training, 512, 1, init=True)
    with pytest.raises(TrainingError) as err:
        load_hf_weights(model, wd.run / f"models/{VARIANT}/{SIZE}/step8")
    line = _one_line(err)
    assert "a checkpoint of another architecture" in line
    assert "gpt_neox.embed_in.weight (512, 32) vs (512, 64)" in line


def test_eval_task_that_does_not_exist(tmp_path, rel_env, baseline):
    """Refused by check_eval_tasks (lm-eval's task index, offline), an input of every model's
    first training job: here on a copy whose data is built, so training would come next."""
    wd, _ = baseline
    dst = Workdir(tmp_path / "wd", tmp_path / "bad.yaml", rel_env)
    shutil.copytree(wd.path / RUN / "data", dst.path / RUN / "data")
    dst.config.write_text(
        _config(lambda c: c["eval"].update(tasks=["lambada_cloze", "no_such_task"]))
    )
    proc = dst.snakemake(f"{RUN}/tables/evals.csv")
    assert proc.returncode != 0
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if "no_such_task" in x]
    assert any("ValueError: unknown lm-eval task(s) ['no_such_task']" in x for x in lines), lines
    assert not (dst.path / RUN / "models").exists()  # no training job started
