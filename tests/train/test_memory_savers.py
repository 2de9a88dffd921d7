"""Activation checkpointing, the chunked LM-head loss and Pythia's exact training settings
(GeLU, per-variant precision, ZeRO communication): the same maths, checked on CPU in fp32."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from test_train import BATCH, SIZE, VARIANT, VOCAB, make_samples, make_tokenizer, tiny_suite

from workflow.core.config import Segment, SuiteConfig, load_config
from workflow.train.engine import deepspeed_config
from workflow.train.model import build_model
from workflow.train.step import lm_loss

pytestmark = pytest.mark.deepspeed
GOLDEN = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "golden_loss.json"


def _grads(model, rows, chunk=None):
    model.zero_grad(set_to_none=True)
    loss = lm_loss(model, rows, chunk)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _close(a: dict, b: dict, rel: float) -> None:
    for name in a:
        diff = torch.linalg.vector_norm(a[name] - b[name])
        assert diff <= rel * torch.linalg.vector_norm(a[name]) + 1e-12, name


def _model(suite: SuiteConfig):
    model = build_model(suite.models[SIZE], suite.training, VOCAB, seed=3)
    model.train()
    return model


def _rows(n=3):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, VOCAB, (n, 17), generator=g)


@pytest.mark.parametrize("chunk", [1, 7, 16, 48, 10_000])
def test_chunked_loss_equals_the_full_loss(chunk):
    """Loss and every gradient within 1e-6 of F.cross_entropy over all logits at once, for chunk
    sizes that divide the tokens, do not, and exceed them."""
    suite = tiny_suite()
    model, rows = _model(suite), _rows()
    full_loss, full = _grads(model, rows)
    loss, chunked = _grads(model, rows, chunk)
    assert float(loss) == pytest.approx(float(full_loss), rel=1e-6)
    _close(full, chunked, 1e-6)


def test_activation_checkpointing_gives_the_same_gradients():
    suite = tiny_suite()
    plain, rows = _model(suite), _rows()
    loss, a = _grads(plain, rows)
    ckpt = _model(suite)
    ckpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    loss2, b = _grads(ckpt, rows)
    assert float(loss2) == pytest.approx(float(loss), rel=1e-6)
    _close(a, b, 1e-6)


def test_checkpointing_and_the_chunked_loss_save_memory():
    """What backward keeps alive (saved-tensor hooks) shrinks with each saver, as the memory
    model says (tests/test_memory.py validates its terms)."""
    suite = tiny_suite()
    rows = _rows(4)

    def saved(model, chunk=None):
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen = {}

        def pack(t):
            st = t.untyped_storage()
            if st.data_ptr() not in params:
                seen[st.data_ptr()] = st.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            lm_loss(model, rows, chunk)
        return sum(seen.values())

    plain = saved(_model(suite))
    ckpt_model = _model(suite)
    ckpt_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ckpt = saved(ckpt_model)
    both = saved(ckpt_model, chunk=16)
    logits_fp32 = 4 * rows.size(0) * (rows.size(1) - 1) * ckpt_model.config.vocab_size
    assert ckpt < plain
    assert both <= ckpt - logits_fp32  # the fp32 log-softmax is no longer kept


@pytest.fixture(scope="module")
def saver_runs(tmp_path_factory):
    """The tiny fixed model (test_train's) trained 0 -> 8 with both savers on, and 0 -> 4 -> 8."""
    from workflow.train.segment import train_segment

    threads = torch.get_num_threads()
    tmp = tmp_path_factory.mktemp("savers")
    suite = tiny_suite(activation_checkpointing=True, loss_chunk_tokens=24)
    tok = make_tokenizer(tmp / "tokenizer.json")
    samples = make_samples(tmp / "samples", 12 * BATCH, VOCAB)

    def seg(name, start, end, steps, resume):
        return train_segment(
            suite,
            size=SIZE,
            variant=VARIANT,
            samples_prefix=samples,
            tokenizer_path=tok,
            segment=Segment(start, end, tuple(steps)),
            out_dirs={s: tmp / name / f"step{s}" for s in steps},
            resume_from=resume,
            log=lambda *_: None,
        )

    seg("a", -1, 0, [0], None)
    full = seg("a", 0, 8, [4, 8], tmp / "a" / "step0")
    split = seg("b", 0, 4, [4], tmp / "a" / "step0") + seg("b", 4, 8, [8], tmp / "b" / "step4")
    torch.set_num_threads(threads)
    return {"tmp": tmp, "full": full, "split": split}


def test_savers_reproduce_the_golden_losses(saver_runs):
    """The committed golden losses of test_train (no savers) within their own tolerance."""
    golden = json.loads(GOLDEN.read_text())
    got = saver_runs["full"]
    assert [m["loss"] for m in got] == pytest.approx(golden["loss"], rel=1e-5)
    assert [m["grad_norm"] for m in got] == pytest.approx(golden["grad_norm"], rel=1e-4)


def test_savers_resume_bit_exact(saver_runs):
    full, split = saver_runs["full"], saver_runs["split"]
    assert [m["loss"] for m in full] == [m["loss"] for m in split]
    assert [m["grad_norm"] for m in full] == [m["grad_norm"] for m in split]
    a = (saver_runs["tmp"] / "a" / "step8" / "model.safetensors").read_bytes()
    b = (saver_runs["tmp"] / "b" / "step8" / "model.safetensors").read_bytes()
    assert a == b
    cfg = json.loads((saver_runs["tmp"] / "a" / "step8" / "config.json").read_text())
    assert cfg["hidden_act"] == "gelu"  # the tiny suite keeps the exact GeLU


# --- Pythia's exact settings (models/*/pythia-*.yml) ----------------------------------------


def test_the_paper_trains_with_neox_fused_bias_gelu():
    """bias-gelu-fusion in GPT-NeoX v1.0 is the tanh approximation; the paper config trains with
    it and the checkpoint's config.json names the function transformers computes the same way."""
    suite = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    assert suite.training.activation == "gelu_tanh"
    small = tiny_suite(activation="gelu_tanh")
    model = build_model(small.models[SIZE], small.training, VOCAB, seed=0)
    assert model.config.hidden_act == "gelu_pytorch_tanh"
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    act = model.gpt_neox.layers[0].mlp.act
    neox = x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))
    assert torch.allclose(act(x), neox, atol=1e-7)
    assert not torch.allclose(act(x), torch.nn.functional.gelu(x), atol=1e-4)
    # what transformers builds from the saved config.json: the same function
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    reloaded = GPTNeoXForCausalLM(GPTNeoXConfig.from_dict(model.config.to_dict()))
    assert torch.allclose(reloaded.gpt_neox.layers[0].mlp.act(x), neox, atol=1e-7)


def test_pythia_1b_deduped_is_fp16_and_1b_bf16():
    suite = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    spec = suite.models["1b"]
    std, dedup = spec.for_variant("standard"), spec.for_variant("deduped")
    assert (std.precision, dedup.precision) == ("bf16", "fp16")
    ds_std = deepspeed_config(std, suite.training, 16, 1)
    ds_dedup = deepspeed_config(dedup, suite.training, 16, 1)
    assert ds_std["bf16"]["enabled"] and not ds_std["fp16"]["enabled"]
    assert ds_dedup["fp16"]["enabled"] and not ds_dedup["bf16"]["enabled"]
    assert ds_dedup["fp16"]["initial_scale_power"] == 12
    assert all(suite.models[s].for_variant("deduped").precision == "fp16" for s in ("70m", "12b"))


def test_a_precision_per_variant_is_validated(tmp_path):
    raw = yaml.safe_load(open("config/pythia.yaml"))
    raw["models"]["1b"]["precision"] = {"deduped": "fp8"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    from workflow.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"models\.1b\.precision"):
        load_config(path)


def test_zero_communication_is_pythias_in_the_engine(monkeypatch):
    """overlap_comm and bucket sizes as Pythia's configs set them, read back from a real
    DeepSpeed engine (ZeRO-1, one rank, fp32 on CPU)."""
    suite = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    ds12 = deepspeed_config(suite.models["12b"], suite.training, 8, 2)["zero_optimization"]
    ds70 = deepspeed_config(suite.models["70m"], suite.training, 32, 1)["zero_optimization"]
    assert ds12["overlap_comm"] and ds12["reduce_bucket_size"] == 1.26e9
    assert ds12["allgather_bucket_size"] == 1.26e9
    assert ds70["overlap_comm"] and ds70["reduce_bucket_size"] == 5e8

    import deepspeed

    for key, value in dict(
        MASTER_ADDR="127.0.0.1", MASTER_PORT="29547", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"
    ).items():
        monkeypatch.setenv(key, value)
    small = tiny_suite(zero_overlap_comm=True, zero_bucket_size=1.26e9)
    spec = small.models[SIZE]
    model = build_model(spec, small.training, VOCAB, seed=0)
    config = deepspeed_config(spec, small.training, BATCH, 1, stage=1)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=config
    )
    assert engine.zero_overlap_comm() is True
    assert engine.zero_reduce_bucket_size() == 1.26e9
    assert engine.zero_allgather_bucket_size() == 1.26e9
    assert math.isclose(engine.optimizer.reduce_bucket_size, 1.26e9)
