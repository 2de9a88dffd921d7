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
    is the module's; its backward scales and reduces whatever loss it is given). The output
    layer is called as a module, not as its weight: under tensor parallelism it is AutoTP's
    column-parallel head, whose forward gathers the vocabulary shards of the logits and whose
    backward all-reduces the hidden states' gradient over the tensor-parallel group."""
    net = getattr(model, "module", model)
    hidden = net.gpt_neox(input_ids=inputs).last_hidden_state
    hidden = hidden.reshape(-1, hidden.size(-1))
    targets = targets.reshape(-1)
    head = net.get_output_embeddings()
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for i in range(0, hidden.size(0), chunk):
        total = total + checkpoint(
            _loss_sum, hidden[i : i + chunk], head, targets[i : i + chunk], use_reentrant=False
        )
    return total / hidden.size(0)


def _loss_sum(hidden: torch.Tensor, head, targets: torch.Tensor) -> torch.Tensor:
    logits = head(hidden)
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def _grad_norm(model, tp_group=None) -> float:
    """The global L2 norm of the gradients. Under tensor parallelism a sharded parameter's
    squares are summed over the group and a replicated one's counted once (as DeepSpeed's
    clip_grad_norm_ does)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if tp_group is None:
        return float(
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        )
    from deepspeed.runtime.utils import is_model_parallel_parameter

    first = torch.distributed.get_rank(group=tp_group) == 0
    squares = [
        torch.linalg.vector_norm(p.grad.float()) ** 2
        for p in model.parameters()
        if p.grad is not None and (first or is_model_parallel_parameter(p))
    ]
    total = torch.stack(squares).sum() if squares else torch.zeros((), device=grads[0].device)
    torch.distributed.all_reduce(total, group=tp_group)
    return float(total.sqrt())


def check_same_rows(rows: torch.Tensor, tp_group, step: int) -> None:
    """Every rank of a tensor-parallel group trains on the same rows (each computes a slice of
    the same model on them): two position-weighted checksums agree over the group, or every
    rank raises (collective; two int64 scalars a step)."""
    from workflow.train.errors import TrainingError

    weights = torch.arange(1, rows.numel() + 1, device=rows.device).view_as(rows)
    sig = torch.stack([rows.sum(), (rows * weights).sum()])
    both = torch.cat([sig, -sig])
    torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX, group=tp_group)
    if not torch.equal(both[:2], -both[2:]):
        raise TrainingError(
            f"step {step}: the ranks of a tensor-parallel group read different rows "
            "(they must read their data-parallel rank's slice of the batch)"
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
    dp_group=None,
    tp_group=None,
) -> dict[str, Any]:
    """One optimizer step (all its micro-batches); returns the step's metrics.

    `rank` and `world_size` are the data-parallel rank and size: the rows are the rank's slice
    of the step's global batch, the same for every rank of a tensor-parallel group, and the
    logged loss is the mean over `dp_group` (None: the whole world, i.e. no tensor parallelism).
    `tp_group` is the tensor-parallel group (for the grad norm of plain ZeRO-0).

    `token_lut` (a lookup table over the vocabulary, data.read_token_map) rewrites the step's
    tokens before use: the same rows in the same order, with some token ids replaced."""
    t0 = time.perf_counter()
    lr = float(engine.get_lr()[0])  # the LR this update uses (scheduler advances in step())
    start, stop = step_rows(step, batch, rank, world_size)
    rows = data.get_rows(start, stop).astype(np.int64)
    if token_lut is not None:
        rows = token_lut[rows]
    rows = torch.from_numpy(rows).to(engine.device)
    if tp_group is not None:
        check_same_rows(rows, tp_group, step)
    losses = []
    grad_norm = None
    for i in range(0, rows.size(0), micro):
        loss = lm_loss(engine, rows[i : i + micro], chunk)
        engine.backward(loss)  # DeepSpeed divides by the accumulation steps
        if own_grad_norm and engine.is_gradient_accumulation_boundary():
            # Plain fp32 ZeRO-0 clips without recording the norm; grads are all-reduced here.
            grad_norm = _grad_norm(engine.module, tp_group)
        engine.step()
        losses.append(loss.detach())
    mean_loss = torch.stack(losses).mean()
    if world_size > 1:
        torch.distributed.all_reduce(mean_loss, group=dp_group)
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
