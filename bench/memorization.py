"""Memorization scoring throughput: sequences/s of our batched greedy decoding with a KV cache
(`memorization_scores`, as the memorization jobs run it) vs the paper's loop of one HF
`generate(min_length = max_length = k + l)` call per sequence (eval_memorization.py), same
model, same rows, same process. The naive loop runs on a prefix of the rows (it is the slow
one); both rates are per sequence, and its continuations must equal ours token for token.
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import Result

K = L = 32  # the paper's probe


def _model(layers: int, hidden: int, heads: int, vocab: int):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=2 * (K + L),
        rotary_pct=0.25,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
        tie_word_embeddings=False,
    )
    return GPTNeoXForCausalLM(cfg).eval()


def run(
    sequences: int = 1024,
    naive_sequences: int = 64,
    layers: int = 4,
    hidden: int = 256,
    heads: int = 4,
    vocab: int = 1024,
    batch_size: int = 256,
) -> Result:
    import torch

    from workflow.studies.memorization.scores import greedy_decode, memorization_scores

    model = _model(layers, hidden, heads, vocab)
    rows = np.random.default_rng(0).integers(2, vocab, (sequences, K + L + 1)).astype(np.uint16)
    memorization_scores(model, rows[:8], K, L, batch_size, 0)  # warm-up (allocator, kernels)

    t = time.perf_counter()
    memorization_scores(model, rows, K, L, batch_size, 0)
    ours = sequences / (time.perf_counter() - t)

    prompts = torch.from_numpy(rows[:naive_sequences, :K].astype(np.int64))
    t = time.perf_counter()
    naive = []
    with torch.inference_mode():
        for p in prompts:
            out = model.generate(
                p[None],
                attention_mask=torch.ones_like(p[None]),
                do_sample=False,
                max_length=K + L,
                min_length=K + L,
                eos_token_id=0,
                pad_token_id=1,
            )
            naive.append(out[0, K:])
    baseline = naive_sequences / (time.perf_counter() - t)
    same = torch.equal(torch.stack(naive), greedy_decode(model, prompts, L, suppress_token=0))
    ratio = ours / baseline
    return Result(
        name=f"memorization (k=l=32, {layers}x{hidden} GPTNeoX, batch {batch_size})",
        ours=f"{ours:,.0f} seq/s",
        baseline=f"{baseline:,.1f} seq/s",
        ratio=ratio,
        target=">= 10x",
        passed=ratio >= 10 and same,
        note="" if same else "continuations differ from per-sequence generate",
    )
