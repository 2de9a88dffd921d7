"""Pythia architecture (HF GPTNeoXConfig), NeoX init, parameter counts of the paper's sizes."""

import dataclasses
import math

import pytest
import torch

from workflow.core.config import SuiteConfig, load_config
from workflow.train.model import (
    attention_implementation,
    build_model,
    build_model_config,
    init_pythia_weights,
    init_stds,
)

SUITE = SuiteConfig.from_dict(load_config("config/config.yaml"))
TRAINING = SUITE.training
TINY = dataclasses.replace(
    SUITE.models["tiny-70m"], num_layers=2, hidden_size=32, num_attention_heads=2
)

# reference/pythia.md §1.1: (L, d, heads, model_parallel) -> (non-embedding, total, padded V)
PAPER = {
    "70m": (6, 512, 8, 1, 18_915_328, 70_426_624, 50304),
    "160m": (12, 768, 12, 1, 85_056_000, 162_322_944, 50304),
    "410m": (24, 1024, 16, 1, 302_311_424, 405_334_016, 50304),
    "1b": (16, 2048, 8, 1, 805_736_448, 1_011_781_632, 50304),
    "1.4b": (24, 2048, 16, 1, 1_208_602_624, 1_414_647_808, 50304),
    "2.8b": (32, 2560, 32, 1, 2_517_652_480, 2_775_208_960, 50304),
    "6.9b": (32, 4096, 32, 2, 6_444_163_072, 6_857_302_016, 50432),
    "12b": (36, 5120, 40, 4, 11_327_027_200, 11_846_072_320, 50688),
}
PILE_TOKENIZER_VOCAB = 50277


@pytest.mark.parametrize("size", PAPER)
def test_paper_parameter_counts(size):
    n_layers, d, heads, mp, non_emb, total, padded = PAPER[size]
    spec = dataclasses.replace(
        TINY,
        name=size,
        num_layers=n_layers,
        hidden_size=d,
        num_attention_heads=heads,
        model_parallel=mp,
    )
    training = dataclasses.replace(TRAINING, seq_length=2048, make_vocab_size_divisible_by=128)
    cfg = build_model_config(spec, training, PILE_TOKENIZER_VOCAB)
    assert cfg.vocab_size == padded
    assert cfg.intermediate_size == 4 * d
    assert spec.total_params(padded) == total
    assert spec.non_embedding_params() == non_emb
    from transformers import GPTNeoXForCausalLM

    with torch.device("meta"):  # no memory: only the shapes are counted
        model = GPTNeoXForCausalLM._from_config(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == total
    emb = model.gpt_neox.embed_in.weight.numel() + model.lm_head.weight.numel()
    assert n - emb == non_emb


def test_config_is_pythia_shaped():
    cfg = build_model_config(TINY, TRAINING, 300)
    assert cfg.vocab_size == 384  # padded to a multiple of 128
    assert cfg.use_parallel_residual and not cfg.tie_word_embeddings
    assert cfg.rope_parameters["partial_rotary_factor"] == 0.25
    assert cfg.rope_parameters["rope_theta"] == 10000
    assert cfg.layer_norm_eps == 1e-5 and cfg.hidden_act == "gelu"
    assert cfg.hidden_dropout == 0 and cfg.attention_dropout == 0
    assert cfg.max_position_embeddings == TRAINING.seq_length
    assert (cfg.bos_token_id, cfg.eos_token_id) == (0, 0)
    assert cfg.use_cache is False


def test_attention_implementation():
    assert attention_implementation("eager") == "eager"
    assert attention_implementation("auto", "fp32") == "sdpa"
    if not torch.cuda.is_available():
        assert attention_implementation("auto") == "sdpa"


def _check_stds(model, spec, tol):
    std, out_std = init_stds(spec)
    seen = {"std": 0, "out": 0}
    for name, p in model.named_parameters():
        if "layernorm" in name or "layer_norm" in name:
            expect = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(p == expect), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            target = (
                out_std
                if name.endswith(("attention.dense.weight", "dense_4h_to_h.weight"))
                else std
            )
            seen["out" if target == out_std else "std"] += 1
            assert abs(p.float().mean().item()) < 4 * target / math.sqrt(p.numel()) + 1e-6, name
            assert p.float().std().item() == pytest.approx(target, rel=tol), name
    assert seen["out"] == 2 * spec.num_layers  # attention.dense + dense_4h_to_h in every layer
    assert seen["std"] == 2 + 2 * spec.num_layers  # embed_in, lm_head, qkv, dense_h_to_4h


@pytest.mark.parametrize("init", ["small_wang", "normal"])
def test_init_stds(init):
    spec = dataclasses.replace(TINY, num_layers=3, hidden_size=64, num_attention_heads=4, init=init)
    model = build_model(spec, TRAINING, 1024, seed=1)
    _check_stds(model, spec, tol=0.06)
    std, out_std = init_stds(spec)
    if init == "small_wang":
        assert std == pytest.approx(math.sqrt(2 / (5 * 64)))
        assert out_std == pytest.approx(2 / 3 / 8)
    else:
        assert (std, out_std) == (0.02, pytest.approx(0.02 / math.sqrt(6)))


def test_init_is_deterministic():
    a = build_model(TINY, TRAINING, 300, seed=7)
    b = build_model(TINY, TRAINING, 300, seed=7)
    c = build_model(TINY, TRAINING, 300, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["gpt_neox.embed_in.weight"], sc["gpt_neox.embed_in.weight"])
    # the global RNG route is deterministic as well
    torch.manual_seed(3)
    init_pythia_weights(a, TINY)
    torch.manual_seed(3)
    init_pythia_weights(b, TINY)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in sa)


def test_unknown_init_is_a_clear_error():
    with pytest.raises(ValueError, match=r"models\.tiny-70m\.init"):
        init_stds(dataclasses.replace(TINY, init="xavier"))
