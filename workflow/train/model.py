"""The Pythia model: GPT-NeoX architecture as a transformers `GPTNeoXForCausalLM`, NeoX init.

Architecture (reference/pythia.md §1.2): parallel (GPT-J) residual with two LayerNorms, rotary on
25% of each head, 4d GeLU MLP, untied input/output embeddings, vocab padded like Megatron.
transformers' own init is N(0, 0.02) everywhere, which is not what Pythia used, so
`init_pythia_weights` re-draws every tensor with GPT-NeoX v1.0's init functions
(`megatron/model/init_functions.py`).
"""

from __future__ import annotations

import importlib.util
import math

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from workflow.core.config import ModelSpec, TrainingSpec, padded_vocab_size

# NeoX applies `output_layer_init_method` to exactly these two projections: the ones that write
# into the residual stream (ParallelSelfAttention.dense and ParallelMLP.dense_4h_to_h).
# transformers' name of each GeLU: GPT-NeoX v1.0's fused bias_gelu (bias-gelu-fusion, set by every
# Pythia config) is the tanh approximation 0.5x(1 + tanh(0.79788456 x (1 + 0.044715 x^2))), which
# transformers computes as "gelu_pytorch_tanh" (one kernel; "gelu_new" is the same function in
# several). EleutherAI's released Pythia config.json files say "gelu" (exact erf), which is not
# the function the models were trained with.
HIDDEN_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}
OUTPUT_LAYER_SUFFIXES = ("attention.dense.weight", "mlp.dense_4h_to_h.weight")
# The init_method_std NeoX uses for "normal"/"scaled_normal" (its default; the 6.9B/12B configs
# did not set it, see the erratum in reference/pythia.md §1.2).
NORMAL_STD = 0.02
INIT_METHODS = ("small_wang", "normal")


def build_model_config(spec: ModelSpec, training: TrainingSpec, vocab_size: int) -> GPTNeoXConfig:
    """The HF config of one Pythia-shaped model; `vocab_size` is the tokenizer's (unpadded)."""
    padded = padded_vocab_size(
        vocab_size, training.make_vocab_size_divisible_by, spec.model_parallel
    )
    return GPTNeoXConfig(
        vocab_size=padded,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_attention_heads,
        intermediate_size=4 * spec.hidden_size,
        hidden_act=HIDDEN_ACT[training.activation],
        rotary_pct=training.rotary_pct,
        rotary_emb_base=training.rotary_emb_base,
        max_position_embeddings=training.seq_length,
        layer_norm_eps=1e-5,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        # Pythia's HF configs: bos = eos = <|endoftext|> = 0. pad = <|padding|> = 1 is harmless:
        # GPT-NeoX's embedding has no padding_idx, so it does not change training.
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
        initializer_range=NORMAL_STD,
        use_cache=False,
    )


def attention_implementation(requested: str, precision: str | None = None) -> str:
    """Resolve the config's `attention` setting to a transformers `attn_implementation`.

    "auto" picks flash-attn 2 (what Pythia trained with) only where it can run: a CUDA device,
    the optional `flash_attn` package installed, and a half-precision model (flash-attn has no
    fp32 kernels); everywhere else sdpa, transformers' default.
    """
    if requested != "auto":
        return requested
    if precision == "fp32":
        return "sdpa"
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def init_stds(spec: ModelSpec) -> tuple[float, float]:
    """(std of ordinary weights, std of the two residual-output projections) for spec.init."""
    d, n_layers = spec.hidden_size, spec.num_layers
    if spec.init == "small_wang":
        # small_init (Nguyen & Salazar) and wang_init, NeoX init_functions.py
        return math.sqrt(2 / (5 * d)), 2 / n_layers / math.sqrt(d)
    if spec.init == "normal":
        # NeoX defaults "normal" and "scaled_normal" (the 6.9B/12B erratum)
        return NORMAL_STD, NORMAL_STD / math.sqrt(2.0 * n_layers)
    raise ValueError(
        f"models.{spec.name}.init: unknown init {spec.init!r} (expected one of {INIT_METHODS})"
    )


@torch.no_grad()
def init_pythia_weights(
    model: GPTNeoXForCausalLM, spec: ModelSpec, generator: torch.Generator | None = None
) -> None:
    """Re-initialise every parameter as GPT-NeoX v1.0 does for `spec.init`.

    Weight matrices (embeddings and the untied unembedding included) ~ N(0, std); the attention
    output and MLP down projections ~ N(0, out_std); biases 0; LayerNorm weight 1, bias 0.
    Tensors are drawn in `named_parameters()` order from `generator` (or torch's global RNG),
    so the result is a pure function of the seed.
    """
    std, out_std = init_stds(spec)
    for name, p in model.named_parameters():
        if "layernorm" in name or "layer_norm" in name:
            p.fill_(1.0 if name.endswith("weight") else 0.0)
        elif name.endswith("bias"):
            p.zero_()
        elif name.endswith(OUTPUT_LAYER_SUFFIXES):
            p.normal_(0.0, out_std, generator=generator)
        elif p.ndim >= 2:
            p.normal_(0.0, std, generator=generator)
        else:  # pragma: no cover - guards against a transformers layout change
            raise RuntimeError(f"init_pythia_weights: no NeoX init rule for parameter {name}")


def build_model(
    spec: ModelSpec,
    training: TrainingSpec,
    vocab_size: int,
    seed: int,
    *,
    init: bool = True,
    attn_implementation: str | None = None,
) -> GPTNeoXForCausalLM:
    """An fp32 Pythia model on CPU, NeoX-initialised from `seed` (or left as transformers made it
    when `init=False`, for callers that load weights into it right away)."""
    config = build_model_config(spec, training, vocab_size)
    attn = attn_implementation or attention_implementation(training.attention, spec.precision)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM._from_config(config, attn_implementation=attn, dtype=torch.float32)
    if init:
        # A private generator: the weights do not depend on how many numbers transformers' own
        # init happened to draw from the global RNG.
        init_pythia_weights(model, spec, torch.Generator().manual_seed(seed))
    return model
