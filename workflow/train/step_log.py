"""The per-step training log: loss, LR, grad norm, loss scale, tokens/s and MFU, as CSV (and
TensorBoard / W&B when asked for and installed), plus a progress bar on an interactive terminal.

MFU follows PaLM (appendix B): training FLOPs per token = 6·N + 12·L·d·T, where N counts the
parameters that take part in matmuls (all but the input embedding, a lookup), L the layers, d
the hidden size and T the sequence length; MFU = achieved FLOP/s per device / the device's peak.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COLUMNS = (
    "step",
    "loss",
    "lr",
    "grad_norm",
    "loss_scale",
    "skipped",
    "seconds",
    "tokens_per_s",
    "tflops_per_device",
    "mfu",
    "tokens_seen",
)

# Dense bf16/fp16 tensor-core peaks (TFLOP/s) by device name; fp32 has no entry (MFU is quoted
# against the mixed-precision peak, as in the paper's and Megatron's reports).
PEAK_TFLOPS = {"A100": 312.0, "H100": 989.0, "H200": 989.0, "A10G": 125.0, "L4": 121.0}


def flops_per_token(num_matmul_params: int, num_layers: int, hidden_size: int, seq_length: int):
    return 6 * num_matmul_params + 12 * num_layers * hidden_size * seq_length


def matmul_params(model) -> int:
    """Parameters that multiply activations: everything but the input embedding table."""
    embed = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not embed)


def device_peak_tflops(configured: float | None, precision: str) -> float | None:
    if configured:
        return float(configured)
    import torch

    if precision == "fp32" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peak in PEAK_TFLOPS.items():
        if key in name:
            return peak
    return None


class StepLog:
    """Rows go to `<path>.partial`, flushed each step; `close(complete=True)` renames it to
    `path`, so a complete-looking log means a complete segment. A segment resumed after a
    preemption continues the partial file from the step it resumed at."""

    def __init__(
        self,
        path: str | os.PathLike | None,
        *,
        flops_per_step_per_device: float,
        peak_tflops: float | None,
        resume_step: int | None = None,
        tensorboard_dir: str | os.PathLike | None = None,
        wandb_project: str | None = None,
        run_name: str = "",
    ):
        self.path = Path(path) if path is not None else None
        self.flops = flops_per_step_per_device
        self.peak = peak_tflops
        self._file = self._writer = self._tb = self._wandb = None
        if self.path is not None:
            partial = self.partial
            partial.parent.mkdir(parents=True, exist_ok=True)
            kept = []
            if resume_step is not None and partial.exists():
                with open(partial, newline="") as f:
                    kept = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            self._file = open(partial, "w", newline="")
            self._writer = csv.DictWriter(self._file, COLUMNS)
            self._writer.writeheader()
            self._writer.writerows(kept)
            self._file.flush()
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(tensorboard_dir))
            except ImportError:
                log.warning("training.tensorboard: the tensorboard package is not installed")
        if wandb_project:
            try:
                import wandb

                self._wandb = wandb.init(project=wandb_project, name=run_name, resume="allow")
            except ImportError:
                log.warning("training.wandb_project: the wandb package is not installed")

    @property
    def partial(self) -> Path:
        return Path(str(self.path) + ".partial")

    def row(self, m: dict[str, Any], tokens_per_step: int, world_size: int) -> dict[str, Any]:
        secs = m["seconds"]
        tflops = self.flops / secs / 1e12 if secs > 0 else None
        return {
            "step": m["step"],
            "loss": m["loss"],
            "lr": m["lr"],
            "grad_norm": m["grad_norm"],
            "loss_scale": m.get("loss_scale"),
            "skipped": int(bool(m["skipped"])),
            "seconds": secs,
            "tokens_per_s": tokens_per_step / secs if secs > 0 else None,
            "tflops_per_device": tflops,
            "mfu": tflops / self.peak if (tflops is not None and self.peak) else None,
            "tokens_seen": m["step"] * tokens_per_step,
        }

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
            self._file.flush()
        scalars = {k: row[k] for k in COLUMNS[1:] if isinstance(row[k], int | float)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"train/{k}", v, row["step"])
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in scalars.items()}, step=row["step"])

    def close(self, complete: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if complete:
                os.replace(self.partial, self.path)
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class Progress:
    """A segment's StepLog and, on an interactive terminal, a progress bar. As a context manager
    it closes both; the log counts as complete only when the block ended without an exception."""

    def __init__(self, steplog: StepLog, bar, tokens_per_step: int, world_size: int):
        self.steplog, self.bar = steplog, bar
        self.tokens_per_step, self.world_size = tokens_per_step, world_size

    def update(self, m: Mapping[str, Any]) -> None:
        row = self.steplog.row(m, self.tokens_per_step, self.world_size)
        self.steplog.write(row)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{m['loss']:.4f}", tok_s=f"{row['tokens_per_s'] or 0:,.0f}")
            self.bar.update()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.steplog.close(exc_type is None)
        if self.bar is not None:
            self.bar.close()


def progress_bar(total: int, desc: str, *, enabled: bool):
    """A tqdm bar on an interactive terminal (a job's log gets the per-step lines instead)."""
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
