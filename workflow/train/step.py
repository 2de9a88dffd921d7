"""One optimizer step: the step's rows through forward, backward and the optimizer, for every
micro-batch (DeepSpeed gradient accumulation); the row's tokens are inputs = row[:-1],
targets = row[1:]."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from workflow.data.indexed_dataset import MMapIndexedDataset
from workflow.train.data import step_rows


def lm_loss(model, rows: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy of a (n, seq_length+1) block of rows.

    Targets are taken from the row here rather than passing labels= to transformers, which
    would shift them a second time. With `chunk`, the LM head and its loss run `chunk` tokens
    at a time (chunked_lm_loss): the same value, without n x seq x vocab fp32 logits.
    """
    inputs, targets = rows[:, :-1], rows[:, 1:]
    if chunk:
        return chunked_lm_loss(model, inputs, targets, chunk)
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


def chunked_lm_loss(model, inputs: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """The transformer once, then the output layer and cross-entropy over `chunk` tokens at a
    time, each recomputed in backward (non-reentrant checkpoint): only the final hidden states
    stay alive, not the logits, their fp32 copy and the log-softmax of every token.

    `model` is a GPTNeoXForCausalLM or a DeepSpeed engine around one (ZeRO 0-2: its forward
    is the module's; its backward scales and reduces whatever loss it is given)."""
    net = getattr(model, "module", model)
    hidden = net.gpt_neox(input_ids=inputs).last_hidden_state
    hidden = hidden.reshape(-1, hidden.size(-1))
    targets = targets.reshape(-1)
    weight = net.get_output_embeddings().weight
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for i in range(0, hidden.size(0), chunk):
        total = total + checkpoint(
            _loss_sum, hidden[i : i + chunk], weight, targets[i : i + chunk], use_reentrant=False
        )
    return total / hidden.size(0)


def _loss_sum(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def _grad_norm(model) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    )


def train_step(
    engine,
    data: MMapIndexedDataset,
    step: int,
    *,
    batch: int,
    micro: int,
    rank: int,
    world_size: int,
    own_grad_norm: bool,
    token_lut: np.ndarray | None = None,
    chunk: int | None = None,
) -> dict[str, Any]:
    """One optimizer step (all its micro-batches); returns the step's metrics.

    `token_lut` (a lookup table over the vocabulary, data.read_token_map) rewrites the step's
    tokens before use: the same rows in the same order, with some token ids replaced."""
    t0 = time.perf_counter()
    lr = float(engine.get_lr()[0])  # the LR this update uses (scheduler advances in step())
    start, stop = step_rows(step, batch, rank, world_size)
    rows = data.get_rows(start, stop).astype(np.int64)
    if token_lut is not None:
        rows = token_lut[rows]
    rows = torch.from_numpy(rows).to(engine.device)
    losses = []
    grad_norm = None
    for i in range(0, rows.size(0), micro):
        loss = lm_loss(engine, rows[i : i + micro], chunk)
        engine.backward(loss)  # DeepSpeed divides by the accumulation steps
        if own_grad_norm and engine.is_gradient_accumulation_boundary():
            # Plain fp32 ZeRO-0 clips without recording the norm; grads are all-reduced here.
            grad_norm = _grad_norm(engine.module)
        engine.step()
        losses.append(loss.detach())
    mean_loss = torch.stack(losses).mean()
    if world_size > 1:
        torch.distributed.all_reduce(mean_loss)
        mean_loss /= world_size
    if grad_norm is None:
        gn = engine.get_global_grad_norm()
        grad_norm = None if gn is None else float(gn)
    scale = getattr(engine.optimizer, "cur_scale", None) if engine.fp16_enabled() else None
    return {
        "step": step,
        "loss": float(mean_loss),
        "lr": lr,
        "grad_norm": grad_norm,
        "loss_scale": None if scale is None else float(scale),
        "skipped": not engine.was_step_applied(),
        "seconds": time.perf_counter() - t0,
    }
