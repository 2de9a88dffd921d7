"""workflow.plan.memory against what PyTorch and DeepSpeed actually hold, measured on CPU.

Saved-for-backward bytes are measured with saved-tensor hooks around a forward pass of
transformers' GPT-NeoX and the loss (unique storages, parameters excluded); model-state bytes
by walking every live tensor of a real DeepSpeed engine after backward and after the step.
"""

from __future__ import annotations

import gc
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from workflow.plan.memory import (
    GIB,
    Layout,
    Shape,
    forward_memory,
    loss_bytes,
    model_states,
    saved_activation_bytes,
    training_memory,
)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _model(shape: Shape, precision: str = "fp32", attn: str = "sdpa") -> GPTNeoXForCausalLM:
    cfg = GPTNeoXConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=4 * shape.hidden,
        rotary_pct=0.25,
        max_position_embeddings=shape.seq,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        use_cache=False,
    )
    torch.manual_seed(0)
    return GPTNeoXForCausalLM._from_config(cfg, attn_implementation=attn, dtype=DTYPES[precision])


def _saved_for_backward(model, shape: Shape, checkpointing: bool) -> int:
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    rows = torch.randint(0, shape.vocab, (shape.micro_batch, shape.seq + 1))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(input_ids=rows[:, :-1]).logits
        F.cross_entropy(logits.float().reshape(-1, shape.vocab), rows[:, 1:].reshape(-1))
    return sum(seen.values())


# (layers, hidden, heads, vocab, seq, micro-batch), checkpointing, precision, attention
CASES = [
    ((2, 64, 4, 512, 32, 2), False, "fp32", "sdpa"),
    ((4, 64, 4, 512, 32, 2), True, "fp32", "sdpa"),
    ((2, 128, 4, 512, 64, 2), False, "fp32", "sdpa"),
    ((3, 64, 4, 1024, 32, 4), False, "fp32", "sdpa"),
    ((2, 64, 4, 512, 64, 2), True, "fp32", "sdpa"),
    ((2, 64, 8, 512, 64, 4), False, "bf16", "sdpa"),
    ((2, 64, 4, 512, 64, 2), False, "fp32", "eager"),
    ((6, 96, 6, 768, 48, 3), True, "bf16", "sdpa"),
]


@pytest.mark.parametrize("dims,checkpointing,precision,attn", CASES)
def test_saved_activations_and_logits_match_the_model(dims, checkpointing, precision, attn):
    shape = Shape(*dims)
    layout = Layout(
        precision=precision,
        activation_checkpointing=checkpointing,
        flash_attention=attn != "eager",
    )
    measured = _saved_for_backward(_model(shape, precision, attn), shape, checkpointing)
    estimate = saved_activation_bytes(shape, layout) + loss_bytes(shape, layout)[0]
    assert abs(estimate - measured) <= 0.10 * measured, (estimate, measured)


def test_checkpointing_keeps_one_layer_input_per_layer():
    shape = Shape(4, 64, 4, 512, 32, 2)
    full = _saved_for_backward(_model(shape), shape, False)
    kept = _saved_for_backward(_model(shape), shape, True)
    assert kept < full / 3
    assert saved_activation_bytes(shape, Layout(activation_checkpointing=True)) < (
        saved_activation_bytes(shape, Layout()) / 3
    )


def _live_tensor_bytes() -> int:
    seen = {}
    for obj in gc.get_objects():
        try:
            if torch.is_tensor(obj) and obj.numel() > 1:
                storage = obj.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, ReferenceError):
            continue
    return sum(seen.values())


@pytest.mark.deepspeed
@pytest.mark.parametrize("stage", [0, 1, 2])
def test_model_states_match_a_real_deepspeed_engine(stage, monkeypatch):
    """Weights + gradients + master copy + Adam moments of a 1-rank fp32 engine, at their peak
    (after backward or after the step), against model_states."""
    for key, value in dict(
        MASTER_ADDR="127.0.0.1", MASTER_PORT="29541", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"
    ).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DS_ACCELERATOR", os.environ.get("DS_ACCELERATOR", "cpu"))
    import deepspeed

    shape = Shape(2, 64, 4, 512, 32, 2)
    gc.collect()
    before = _live_tensor_bytes()
    model = _model(shape)
    config = {
        "train_batch_size": shape.micro_batch,
        "train_micro_batch_size_per_gpu": shape.micro_batch,
        "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "torch_adam": True}},
        "zero_optimization": {"stage": stage},
    }
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=config
    )
    peak = 0
    for _ in range(2):
        rows = torch.randint(0, shape.vocab, (shape.micro_batch, shape.seq + 1))
        logits = engine(input_ids=rows[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, shape.vocab), rows[:, 1:].reshape(-1))
        engine.backward(loss)
        del logits, loss
        gc.collect()
        peak = max(peak, _live_tensor_bytes() - before)
        engine.step()
        gc.collect()
        peak = max(peak, _live_tensor_bytes() - before)
    estimate = sum(model_states(shape, Layout(precision="fp32", zero_stage=stage)))
    assert shape.parameters == model.num_parameters()
    assert abs(estimate - peak) <= 0.10 * peak, (estimate, peak)


def test_zero_and_tensor_parallel_shard_the_states():
    shape = Shape(32, 4096, 32, 50304, 2048, 8)
    one = model_states(shape, Layout(precision="fp16", zero_stage=1))
    dp = model_states(shape, Layout(precision="fp16", zero_stage=1, data_parallel=64))
    tp = model_states(
        shape, Layout(precision="fp16", zero_stage=1, data_parallel=64, tensor_parallel=2)
    )
    assert dp[0] == one[0] and dp[2] < one[2] / 60  # ZeRO-1: optimizer sharded, weights not
    # AutoTP: the input embedding, LayerNorms and row-parallel biases stay whole on every rank
    h, v = shape.hidden, shape.vocab
    replicated = 32 * 6 * h + v * h + 2 * h
    assert shape.per_rank(2) == (shape.parameters - replicated) / 2 + replicated
    assert tp[0] == int(2 * shape.per_rank(2)) and dp[0] / 2 < tp[0] < 0.53 * dp[0]
    assert tp[2] < dp[2] / 1.9
    z2 = model_states(shape, Layout(precision="fp16", zero_stage=2, data_parallel=64))
    assert z2[1] < dp[1] / 10


def test_the_chunked_loss_holds_one_chunk_of_logits():
    shape = Shape(6, 512, 8, 50304, 2048, 32)
    full = loss_bytes(shape, Layout(precision="fp16"))
    chunked = loss_bytes(shape, Layout(precision="fp16", loss_chunk_tokens=4096))
    assert full[0] == 4 * shape.tokens * shape.vocab  # the fp32 log-softmax
    assert chunked == (0, 4096 * shape.vocab * (2 + 4 + 4))
    # tensor parallel: the gathered logits are the whole vocabulary's, beside the rank's shard
    tp = loss_bytes(shape, Layout(precision="fp16", loss_chunk_tokens=4096, tensor_parallel=2))
    assert tp == (0, 4096 * shape.vocab * (2 + 4 + 4 + 1))


def test_the_paper_70m_at_micro_batch_32_needs_the_memory_savers():
    """The issue's measurement: 70m at the paper's micro-batch does not fit 40 GB with the
    full-vocabulary fp32 loss; with checkpointing and the chunked loss it does."""
    shape = Shape(6, 512, 8, 50304, 2048, 32)
    plain = training_memory(shape, Layout(precision="fp16", data_parallel=32))
    saver = training_memory(
        shape,
        Layout(
            precision="fp16",
            data_parallel=32,
            activation_checkpointing=True,
            loss_chunk_tokens=4096,
        ),
    )
    assert plain.total > 40e9 > saver.total
    assert forward_memory(shape, "fp16").total < 40e9
    assert plain.gib() == plain.total / GIB


# --- the config-time check (workflow/plan/resources.check_gpu_memory) ------------------------


def _paper(**edit):
    import yaml

    from workflow.core.config import SuiteConfig, validate_config

    raw = yaml.safe_load(open("config/pythia.yaml"))
    for path, value in edit.items():
        *keys, last = path.split("__")
        node = raw
        for k in keys:
            node = node[k]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return SuiteConfig.from_dict(validate_config(raw))


def test_the_paper_sizes_up_to_2_8b_fit_a_40gb_a100():
    from workflow.plan.memory import suite_training_memory
    from workflow.plan.resources import check_gpu_memory

    suite = _paper(sizes=["70m", "160m", "410m", "1b", "1.4b", "2.8b"])
    check_gpu_memory(suite)
    assert all(suite_training_memory(suite, s).total < 40e9 for s in suite.models.values())


def test_410m_at_micro_batch_64_without_checkpointing_is_refused_in_one_line():
    from workflow.core.config import ConfigError
    from workflow.plan.resources import check_gpu_memory

    # 64 rows a rank: 16 ranks (2 nodes) keep the global batch of 1024
    suite = _paper(
        sizes=["410m"],
        models__410m__micro_batch_size=64,
        models__410m__nodes=2,
        training__activation_checkpointing=False,
    )
    with pytest.raises(ConfigError) as e:
        check_gpu_memory(suite)
    lines = str(e.value).splitlines()[1:]
    assert len(lines) == 1
    assert lines[0].startswith("  models.410m: a training rank needs ~")
    assert "compute.node.gpu_mem_gb = 40" in lines[0]
    assert "training.activation_checkpointing: true" in lines[0]


def test_6_9b_and_12b_fit_only_with_pythias_tensor_parallelism():
    """The paper layout (TP 2 and 4, 64 data-parallel replicas of micro-batch 8) fits a 40 GB
    A100; every rank data-parallel (12B on 256 ranks at micro-batch 4) does not, and the
    refusal names the config key that fixes it."""
    from workflow.core.config import ConfigError
    from workflow.plan.memory import suite_training_memory, training_layout
    from workflow.plan.resources import check_gpu_memory

    suite = _paper(sizes=["6.9b", "12b"])
    check_gpu_memory(suite)
    for size, tp in (("6.9b", 2), ("12b", 4)):
        layout, micro = training_layout(suite, suite.models[size])
        assert (layout.data_parallel, layout.tensor_parallel, micro) == (64, tp, 8)
        assert suite_training_memory(suite, suite.models[size]).total < 40e9
    flat = _paper(sizes=["12b"], models__12b__model_parallel=1, models__12b__micro_batch_size=4)
    with pytest.raises(ConfigError, match=r"models\.12b: a training rank needs ~6\d\.\d GB") as e:
        check_gpu_memory(flat)
    assert str(e.value).endswith("would fit with models.12b.model_parallel: 4")  # Pythia's


def test_a_gpu_suite_without_gpu_memory_is_refused():
    from workflow.core.config import ConfigError
    from workflow.plan.resources import check_gpu_memory

    suite = _paper(sizes=["70m"], compute__node__gpu_mem_gb=None)
    with pytest.raises(ConfigError, match=r"compute\.node\.gpu_mem_gb is not set.*70m"):
        check_gpu_memory(suite)


def test_forward_jobs_are_checked_with_their_batch():
    from workflow.core.config import ConfigError
    from workflow.plan.resources import check_gpu_memory

    suite = _paper(sizes=["2.8b"], memorization__batch_size=4096)
    with pytest.raises(
        ConfigError, match=r"models\.2\.8b: its memorization job.*memorization\.batch_size"
    ):
        check_gpu_memory(suite)
