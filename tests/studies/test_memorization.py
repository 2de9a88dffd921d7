"""Memorization (paper §3.2, Fig. 3): batched greedy decoding, scores, shards, the Poisson
analysis, planted passages, bad inputs, and the targets in the paper suite's DAG."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from workflow.core.config import ConfigError, load_config
from workflow.data.indexed_dataset import write_indexed_dataset
from workflow.studies.memorization.figure import plot_poisson_qq
from workflow.studies.memorization.gather import analyse_checkpoint, gather_shards
from workflow.studies.memorization.plan import MemorizationError, MemorizationSpec, check_step
from workflow.studies.memorization.planted import (
    passage_ngrams,
    planted_comparison,
    planted_coverage,
    planted_groups,
)
from workflow.studies.memorization.poisson import (
    block_counts,
    dispersion_test,
    poisson_fit,
    poisson_qq,
)
from workflow.studies.memorization.scores import greedy_decode, memorization_scores, score_shard
from workflow.studies.memorization.table import memorization_table

REPO = Path(__file__).resolve().parents[2]
VOCAB = 64


def tiny_model(seed=0, eos_scale=1.0):
    """A random GPTNeoX (Pythia's architecture); `eos_scale` > 1 makes end-of-text (id 0) the
    greedy choice often, so suppressing it matters."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        rotary_pct=0.25,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
        tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(cfg).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight[0] *= eos_scale
    return model


def hf_generate(model, prompt, new_tokens, suppress_eod):
    """The paper's per-sequence call: generate(min_length = max_length = k + l), greedy; without
    suppression, no end-of-text stop (eos_token_id=None) so all l tokens are produced."""
    kw = dict(do_sample=False, max_new_tokens=new_tokens, pad_token_id=1)
    if suppress_eod:
        kw.update(min_new_tokens=new_tokens, eos_token_id=0)
    else:
        kw.update(eos_token_id=None)
    out = model.generate(prompt[None, :], attention_mask=torch.ones_like(prompt[None, :]), **kw)
    return out[0, len(prompt) :]


@pytest.mark.parametrize("suppress_eod", [True, False])
def test_batched_greedy_equals_hf_generate_token_for_token(suppress_eod):
    model = tiny_model(eos_scale=4.0)
    prompts = torch.randint(2, VOCAB, (12, 9), generator=torch.Generator().manual_seed(1))
    ours = greedy_decode(model, prompts, 11, suppress_token=0 if suppress_eod else None)
    assert ours.shape == (12, 11)
    for prompt, got in zip(prompts, ours, strict=True):
        assert torch.equal(got, hf_generate(model, prompt, 11, suppress_eod))
    # the scaled logit makes end-of-text a greedy choice: suppression changes the continuations
    has_eod = bool((ours == 0).any())
    assert has_eod != suppress_eod


def test_scores_are_the_fraction_of_matching_tokens():
    model = tiny_model(seed=3)
    k, n = 6, 8
    prompts = torch.randint(2, VOCAB, (5, k), generator=torch.Generator().manual_seed(2))
    greedy = greedy_decode(model, prompts, n, suppress_token=0)
    rows = torch.cat([prompts, greedy, torch.full((5, 3), 7)], dim=1).numpy().astype(np.uint16)
    changed = [0, 1, 3, 8, 2]  # continuation tokens replaced in each row
    for i, m in enumerate(changed):
        rows[i, k : k + m] = (rows[i, k : k + m].astype(int) + 1) % VOCAB
    # a shorter continuation can change the greedy path, so score against a fresh decode
    scores = memorization_scores(model, rows, k, n, batch_size=2, suppress_token=0)
    expected = [(n - m) / n for m in changed]
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    assert scores[0] == 1.0  # memorized: all l tokens equal


def test_spec_shards_cover_the_seen_rows_once():
    spec = MemorizationSpec(step=10, global_batch_size=8, samples_per_job=30)
    assert spec.rows_seen == 80 and spec.stride == 1 and spec.num_jobs == 3
    rows = np.concatenate([spec.shard_rows(p) for p in range(spec.num_jobs)])
    np.testing.assert_array_equal(rows, np.arange(80))
    sampled = MemorizationSpec(step=10, global_batch_size=8, samples_per_job=7, max_samples=20)
    assert sampled.stride == 4 and sampled.num_samples == 20 and sampled.num_jobs == 3
    rows = np.concatenate([sampled.shard_rows(p) for p in range(sampled.num_jobs)])
    np.testing.assert_array_equal(rows, np.arange(0, 80, 4))
    with pytest.raises(MemorizationError, match="shard 3 does not exist"):
        sampled.shard_rows(3)
    # the paper: 146.4M samples at step 143000 in 2^23-sample jobs
    paper = MemorizationSpec(step=143000, global_batch_size=1024)
    assert paper.rows_seen == 146_432_000 and paper.num_jobs == 18
    assert [spec.shard_size(p) for p in range(3)] == [30, 30, 20]


def test_shards_per_size_from_the_plan():
    """A size's rows per job (the plan's time model, workflow.plan.resources) or None (one job
    a checkpoint); sizes the plan does not bound keep samples_per_job."""
    from workflow.core.config import SuiteConfig
    from workflow.studies.memorization.plan import MemorizationPlan

    raw = load_config("config/config.yaml")
    suite = SuiteConfig.from_dict(raw)
    small, big, other = list(suite.models)[:3]
    plan = MemorizationPlan.from_config(raw, suite, {small: None, big: 300})
    assert plan.spec(384, small).num_jobs == 1 and plan.spec(384, small).shard_size(0) == 3072
    assert plan.spec(384, big).num_jobs == 11 and plan.spec(384, big).shard_size(10) == 72
    assert plan.spec(384, other).samples_per_job == raw["memorization"]["samples_per_job"]


def _samples(tmp_path, rows: int, width: int = 17, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(2, VOCAB, size=(rows, width)).astype(np.uint16)
    prefix = tmp_path / "samples"
    write_indexed_dataset(prefix, list(data))
    return prefix, data


def _checkpoint(tmp_path, model):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    out = tmp_path / "step4"
    model.save_pretrained(out)
    vocab = {f"w{i}": i for i in range(VOCAB)}
    Tokenizer(WordLevel(vocab, unk_token="w1")).save(str(out / "tokenizer.json"))
    return out


def test_score_shard_writes_index_and_score(tmp_path):
    prefix, data = _samples(tmp_path, rows=40)
    model = tiny_model(seed=5)
    ckpt = _checkpoint(tmp_path, model)
    spec = MemorizationSpec(
        step=4, global_batch_size=8, prompt_tokens=8, continuation_tokens=8, samples_per_job=20
    )
    paths = []
    for part in range(spec.num_jobs):
        paths.append(tmp_path / f"part{part}.parquet")
        score_shard(ckpt, prefix, spec, part, [0, 2, 4], paths[-1], batch_size=7, devices=["cpu"])
    table = gather_shards(paths[::-1])
    assert list(table.columns) == ["index", "score"]
    np.testing.assert_array_equal(table["index"], np.arange(32))  # rows seen by step 4
    direct = memorization_scores(model, data[:32], 8, 8, batch_size=32, suppress_token=0)
    np.testing.assert_allclose(table["score"], direct)


def test_a_shard_on_several_devices_scores_slices_in_processes(tmp_path):
    """memorization.gpus_per_job: one process per device, each a contiguous slice (here two on
    the CPU, as a node's GPUs would), the same scores in the same order as one process; a
    strided shard (max_samples) slices its strided rows."""
    prefix, data = _samples(tmp_path, rows=40)
    model = tiny_model(seed=5)
    ckpt = _checkpoint(tmp_path, model)
    spec = MemorizationSpec(
        step=4, global_batch_size=8, prompt_tokens=8, continuation_tokens=8, max_samples=11
    )
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    score_shard(ckpt, prefix, spec, 0, [0, 2, 4], one, batch_size=4, devices=["cpu"])
    summary = score_shard(
        ckpt, prefix, spec, 0, [0, 2, 4], two, batch_size=4, devices=["cpu", "cpu"]
    )
    a, b = gather_shards([one]), gather_shards([two])
    np.testing.assert_array_equal(b["index"], np.arange(0, 32, 3))  # stride 3: 11 rows
    np.testing.assert_array_equal(a["index"], b["index"])
    np.testing.assert_array_equal(a["score"], b["score"])
    direct = memorization_scores(model, data[0:32:3], 8, 8, batch_size=11, suppress_token=0)
    np.testing.assert_allclose(b["score"], direct)
    assert summary["samples"] == 11


def test_step_beyond_the_data_is_refused_before_any_work(tmp_path):
    prefix, _ = _samples(tmp_path, rows=40)
    spec = MemorizationSpec(step=8, global_batch_size=8, prompt_tokens=8, continuation_tokens=8)
    # no checkpoint exists: the data check must come first
    with pytest.raises(MemorizationError) as e:
        score_shard(tmp_path / "none", prefix, spec, 0, [0, 4, 8], tmp_path / "p.parquet")
    msg = str(e.value)
    assert "step 8 needs rows [0, 64)" in msg and "has only 40 rows" in msg
    assert "samples.bin" in msg and "beyond the data" in msg
    assert not (tmp_path / "p.parquet").exists()


def test_unscheduled_step_and_too_long_probe_are_refused(tmp_path):
    spec = MemorizationSpec(step=5, global_batch_size=8)
    with pytest.raises(MemorizationError, match="step 5 is not a checkpoint of the schedule"):
        check_step(spec, [0, 4, 8], 100, "samples.bin")
    prefix, _ = _samples(tmp_path, rows=40)
    long = MemorizationSpec(step=4, global_batch_size=8, prompt_tokens=10, continuation_tokens=8)
    with pytest.raises(MemorizationError, match=r"10 \+ 8 = 18 exceeds the 17 tokens"):
        score_shard(tmp_path / "none", prefix, long, 0, [0, 4], tmp_path / "p.parquet")


def _config(tmp_path, memorization, seq_length=32):
    import yaml

    raw = yaml.safe_load((REPO / "tests" / "fixtures" / "ci.yaml").read_text())
    raw["training"]["seq_length"] = seq_length
    raw["memorization"] = memorization
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "memorization, message",
    [
        ({"steps": [16]}, "memorization.prompt_tokens + continuation_tokens = 32 + 32 = 64"),
        ({"steps": [15], "prompt_tokens": 8}, "memorization.steps: step 15 is not a checkpoint"),
        ({"steps": [16], "prompt_tokens": 8, "sizes": ["70m"]}, "memorization.sizes: '70m'"),
        ({"steps": [16], "block_size": 0}, "memorization.block_size"),
    ],
)
def test_config_errors_name_the_key(tmp_path, memorization, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        load_config(_config(tmp_path, memorization))


def test_no_study_without_steps(tmp_path):
    cfg = load_config(_config(tmp_path, {}, seq_length=16))  # 32 + 32 > 17, but no study
    assert cfg["memorization"]["steps"] == [] and cfg["memorization"]["block_size"] == 512


# ---------------------------------------------------------------------------- analysis


def test_block_counts_count_memorized_per_block_and_drop_a_partial_block():
    scores = np.zeros(10)
    scores[[0, 1, 7, 9]] = 1.0
    scores[2] = 0.99  # not memorized
    np.testing.assert_array_equal(block_counts(scores, 3), [2, 0, 1])  # sample 9 is dropped
    with pytest.raises(ValueError, match="no whole block"):
        block_counts(scores, 11)


def test_poisson_fit_and_qq_quantiles():
    counts = np.array([3, 0, 2, 1])
    assert poisson_fit(counts) == 1.5
    theo, sample = poisson_qq(counts)
    # Poisson(1.5) CDF: 0.223, 0.558, 0.809, 0.934 -> quantiles at 1/5..4/5 = 0, 1, 2, 2
    np.testing.assert_array_equal(theo, [0, 1, 2, 2])
    np.testing.assert_array_equal(sample, [0, 1, 2, 3])


def test_dispersion_test_known_values():
    d = dispersion_test(np.array([0, 4]))  # mean 2: D = (4 + 4) / 2 = 4 on 1 df
    assert d["statistic"] == 4 and d["df"] == 1 and d["dispersion"] == 4
    assert d["p_overdispersed"] == pytest.approx(0.0455, abs=1e-4)
    assert d["p_value"] == pytest.approx(2 * 0.0455, abs=2e-4)
    flat = dispersion_test(np.array([2, 2, 2, 2]))
    assert flat["statistic"] == 0 and flat["p_overdispersed"] == 1.0
    assert math.isnan(dispersion_test(np.zeros(5))["statistic"])  # nothing memorized


def test_dispersion_test_tells_a_constant_rate_from_a_drifting_one():
    rng = np.random.default_rng(0)
    uniform = dispersion_test(rng.poisson(3.0, 2000))
    assert 0.9 < uniform["dispersion"] < 1.1 and uniform["p_value"] > 0.01
    # memorization concentrated in the second half of training: over-dispersed
    drifting = dispersion_test(np.concatenate([rng.poisson(1.0, 1000), rng.poisson(5.0, 1000)]))
    assert drifting["dispersion"] > 2 and drifting["p_overdispersed"] < 1e-12
    assert stats.chi2.sf(drifting["statistic"], drifting["df"]) == drifting["p_overdispersed"]


def _word_tokenizer(words):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    tok.pre_tokenizer = Whitespace()
    return tok


def test_planted_passages_are_found_in_the_rows():
    words = [f"w{i}" for i in range(50)]
    tok = _word_tokenizer(words)
    passage = " ".join(words[30:42])  # 12 tokens: ids 30..41
    grams = passage_ngrams([passage], tok, n=4)
    rows = np.array(
        [
            [1, 2, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39],  # passage from token 2 on
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],  # none
            [36, 37, 38, 39, 40, 41, 5, 6, 7, 8, 9, 10],  # the passage's end
            [30, 31, 32, 5, 6, 7, 8, 9, 10, 11, 12, 13],  # only 3 tokens: below n = 4
        ]
    )
    cov = planted_coverage(rows, grams, n=4)
    np.testing.assert_array_equal(cov[0], [False] * 2 + [True] * 10)
    assert not cov[1].any() and not cov[3].any()
    np.testing.assert_array_equal(cov[2], [True] * 6 + [False] * 6)
    groups = planted_groups(cov, prompt_tokens=4, continuation_tokens=6)
    assert list(groups) == ["planted", "rest", "partial", "rest"]
    cmp = planted_comparison(np.array([1.0, 0.5, 1.0, 1.0]), groups)
    assert cmp["planted"] == {
        "samples": 1,
        "memorized": 1,
        "memorized_rate": 1.0,
        "mean_score": 1.0,
    }
    assert cmp["rest"]["samples"] == 2 and cmp["rest"]["memorized_rate"] == 0.5
    assert cmp["rate_ratio"] == 2.0


def test_analysis_table_and_figure(tmp_path):
    rng = np.random.default_rng(1)
    panels, paths = [], []
    for variant in ("standard", "deduped"):
        scores = np.where(rng.random(640) < 0.05, 1.0, rng.random(640) * 0.9)
        table = pd.DataFrame({"index": np.arange(640), "score": scores.astype(np.float32)})
        a = analyse_checkpoint(table, block_size=32, prompt_tokens=8, continuation_tokens=8)
        assert a["blocks"] == 20 and sum(a["counts"]) == a["memorized"] == int((scores == 1).sum())
        assert a["lambda"] == pytest.approx(a["memorized"] / 20)
        a.update(variant=variant, size="s", step=4, label=variant)
        path = tmp_path / f"{variant}.json"
        path.write_text(pd.Series(a).to_json())
        panels.append(a)
        paths.append(path)
    df = memorization_table(paths)
    assert list(df["variant"]) == ["standard", "deduped"] and (df["blocks"] == 20).all()
    plot_poisson_qq(panels, tmp_path / "f.pdf", tmp_path / "f.png", title="t")
    assert (tmp_path / "f.pdf").stat().st_size > 1000
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------- the DAG
