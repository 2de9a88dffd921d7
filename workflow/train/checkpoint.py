"""Training checkpoints (the format: workflow/core/checkpoint.py): writing one atomically,
checking one is a valid resume point, and restoring weights, DeepSpeed state and RNG state.

Every checkpoint is HF-loadable; the last of a segment also holds the DeepSpeed state (weights,
Adam moments, LR scheduler, step counter) and the torch RNG state, so resume is bit-exact.

Under tensor parallelism (AutoTP) each rank holds shards of the model: the HF weights are gathered
over the first replica's tensor-parallel group (`gathered_state_dict`) and written by rank 0 in
exactly the format of a one-rank checkpoint, while the DeepSpeed state stays sharded as DeepSpeed
writes it (`mp_rank_<tp>_model_states.pt`, `zero_pp_rank_<dp>_mp_rank_<tp>_optim_states.pt`) and
resumes only with the same tensor-parallel size (check_resume says so). A model moves to another
tensor-parallel size through its HF weights at step 0 only.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workflow.core.checkpoint import CHECKPOINT_JSON, DEEPSPEED_DIR, DEEPSPEED_TAG
from workflow.core.io import dir_digests, read_json, verify_files, write_json
from workflow.train.distributed import barrier
from workflow.train.errors import TrainingError


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def add_legacy_rotary_keys(config_json: Path) -> None:
    """transformers 5 saves only rope_parameters, which 4.x silently ignores; add the keys 4.x
    (and EleutherAI's own configs) use so the checkpoint loads identically in both."""
    cfg = json.loads(config_json.read_text())
    rope = cfg.get("rope_parameters") or {}
    cfg["rotary_pct"] = rope.get("partial_rotary_factor", cfg.get("rotary_pct"))
    cfg["rotary_emb_base"] = rope.get("rope_theta", cfg.get("rotary_emb_base"))
    config_json.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


@torch.no_grad()
def gathered_state_dict(module, tp_group) -> dict[str, torch.Tensor] | None:
    """The full (one-rank) state_dict of an AutoTP-sharded `module`, on the group's first rank
    (None on the others); every rank of `tp_group` must call it.

    Column-parallel layers (QKV, MLP up-projection, LM head) are split along dim 0 of their weight
    and bias, row-parallel ones (attention output, MLP down-projection) along dim 1 of their
    weight with the bias replicated; everything else is replicated. Shards are concatenated in
    rank order, which is the one-rank layout (NeoX's fused QKV keeps each head's q, k, v rows
    together, so a row block is whole heads). The parameters are only read (DeepSpeed's private
    `_consolidated_16bit_state_dict` swaps every parameter's storage to the full tensor and
    back, on every replica), and only the first replica's group gathers. Replicated tensors
    must agree on every rank of the group (a drift would otherwise be saved silently).
    """
    import torch.distributed as dist

    me = dist.get_rank(group=tp_group)
    owners = dict(module.named_modules())
    out: dict[str, torch.Tensor] | None = {} if me == 0 else None
    sums = []
    for key, t in module.state_dict(keep_vars=False).items():
        owner, _, name = key.rpartition(".")
        dim, sizes = _shard_dim(owners[owner], name)
        if dim is None:
            sums.append(t.double().sum())
        else:
            t = _gather_along(t, dim, sizes, tp_group)
        if out is not None:
            out[key] = t.detach().cpu().clone()
    mine = torch.stack(sums) if sums else torch.zeros(1, dtype=torch.float64)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size(group=tp_group))]
    dist.all_gather(everyone, mine, group=tp_group)
    if any(not torch.equal(everyone[0], other) for other in everyone[1:]):
        raise TrainingError(
            "the tensor-parallel ranks hold different copies of a replicated parameter "
            "(embeddings, LayerNorms or a row-parallel bias): training diverged across the group"
        )
    return out


def _shard_dim(module, name: str) -> tuple[int | None, tuple[int, ...]]:
    """(dimension, shard sizes) along which AutoTP split `module`'s tensor `name`, or (None, ())
    for a replicated one."""
    from deepspeed.module_inject.layers import LinearAllreduce, LinearLayer, TensorParallel_Layer

    if not isinstance(module, TensorParallel_Layer):
        return None, ()
    sizes = tuple(module._partition_sizes)
    if type(module) is LinearAllreduce:
        return (1, sizes) if name == "weight" else (None, ())
    if type(module) is LinearLayer:
        return 0, sizes
    raise TrainingError(
        f"{type(module).__name__}: an AutoTP layer this checkpoint writer cannot gather (only "
        "column-parallel LinearLayer and row-parallel LinearAllreduce are expected in GPT-NeoX)"
    )


def _gather_along(t: torch.Tensor, dim: int, sizes: tuple[int, ...], group) -> torch.Tensor:
    """Concatenate every rank's shard of `t` along `dim` (shards may differ in size: padded to
    the largest for the collective, then trimmed)."""
    import torch.distributed as dist

    width = max(sizes)
    t = t.contiguous()
    if t.shape[dim] < width:
        pad = list(t.shape)
        pad[dim] = width - t.shape[dim]
        t = torch.cat([t, t.new_zeros(pad)], dim=dim)
    parts = [torch.empty_like(t) for _ in sizes]
    dist.all_gather(parts, t, group=group)
    return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, sizes, strict=True)], dim=dim)


def save_checkpoint(
    engine,
    out_dir: Path,
    meta: dict[str, Any],
    *,
    with_deepspeed: bool,
    rank: int,
    tokenizer_path: str | os.PathLike,
    seq_length: int,
    tp_group=None,
    dp_rank: int = 0,
) -> None:
    """Write one checkpoint directory atomically (collective when with_deepspeed, or with
    `tp_group`: the ranks of the first replica, dp_rank 0, gather the sharded weights).

    All ranks write DeepSpeed shards into one shared temporary directory (a fixed name, since
    every rank must agree on it); rank 0 adds the HF files and renames it into place last.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    if rank == 0:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)  # left behind by a killed job
        tmp.mkdir()
    barrier()
    try:
        if with_deepspeed:
            engine.save_checkpoint(
                str(tmp / DEEPSPEED_DIR),
                tag=DEEPSPEED_TAG,
                client_state={"step": meta["step"], "rng": rng_state()},
            )
        full = None
        if tp_group is not None and dp_rank == 0:
            full = gathered_state_dict(engine.module, tp_group)
        if rank == 0:
            # with state_dict=None: the module's own (unsharded) weights
            engine.module.save_pretrained(tmp, state_dict=full, safe_serialization=True)
            add_legacy_rotary_keys(tmp / "config.json")
            # Lazy: the tokenizer stage owns how HF tokenizer files are written.
            from workflow.data.tokenizer import save_hf_tokenizer

            save_hf_tokenizer(tokenizer_path, tmp, seq_length)
            # every file's digest, checked before a resume, an eval or an upload uses it
            files = dir_digests(tmp, skip=(CHECKPOINT_JSON,))
            write_json(
                tmp / CHECKPOINT_JSON,
                {**meta, "has_deepspeed_state": with_deepspeed, "files": files},
            )
    except BaseException:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    barrier()
    if rank == 0:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    barrier()


def has_deepspeed_state(ckpt: Path, meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("has_deepspeed_state")) and (ckpt / DEEPSPEED_DIR).is_dir()


def load_hf_weights(model, ckpt: Path) -> None:
    """Copy a checkpoint's model.safetensors into `model` (strict: every tensor must match)."""
    from transformers import GPTNeoXForCausalLM

    saved = GPTNeoXForCausalLM.from_pretrained(ckpt, dtype=torch.float32).state_dict()
    mine = model.state_dict()
    # another architecture: one line naming it (torch lists every mismatched tensor)
    wrong = [k for k in saved if k in mine and saved[k].shape != mine[k].shape]
    if wrong:
        k = wrong[0]
        raise TrainingError(
            f"{ckpt}: a checkpoint of another architecture: {len(wrong)} tensors differ in "
            f"shape from the configured model's, e.g. {k} {tuple(saved[k].shape)} vs "
            f"{tuple(mine[k].shape)}"
        )
    missing, unexpected = model.load_state_dict(saved, strict=False)
    if missing or unexpected:
        raise TrainingError(
            f"{ckpt}: weights do not fit the configured model (missing {missing}, "
            f"unexpected {unexpected})"
        )


def verify_checkpoint_files(ckpt: str | os.PathLike, meta: Mapping[str, Any]) -> None:
    """The checkpoint's files are the bytes its training segment wrote (io.verify_files).

    Without a deepspeed/ directory at all the checkpoint is weights only (a Hub copy, or state
    saved by another number of ranks): its weights are checked, and check_resume decides
    whether weights alone can start the segment (step 0 only)."""
    files = meta.get("files")
    if files and not (Path(ckpt) / DEEPSPEED_DIR).is_dir():
        files = {k: v for k, v in files.items() if k.split("/")[0] != DEEPSPEED_DIR}
    verify_files(
        ckpt,
        files,
        record=Path(ckpt) / CHECKPOINT_JSON,
        # the segment rule that wrote it (when the script recorded it), else its output path
        rule=meta.get("producer") or str(ckpt),
    )


def check_resume(
    resume_from: Path,
    *,
    step: int,
    data_fp: str,
    cfg_hash: str,
    world_size: int,
    zero_stage: int,
    variant: str,
    size: str,
    engine_stage: int | None = None,
    tensor_parallel: int = 1,
) -> dict[str, Any]:
    """Refuse to resume from a checkpoint made for other data, another config, (for ZeRO
    >= 1, whose optimizer shards are per rank) another number of ranks, or another
    tensor-parallel size (DeepSpeed's state holds one file of model shards per tensor-parallel
    rank; DeepSpeed's own re-sharding on load assumes Megatron's QKV layout, not NeoX's).

    Step 0 is exempt from the DeepSpeed-state and rank-count rules: nothing but the weights
    exists before the first update, so `train_segment` can start from its HF weights instead.
    """
    meta_path = Path(resume_from) / CHECKPOINT_JSON
    if not meta_path.exists():
        raise TrainingError(f"{resume_from}: not a training checkpoint (no {CHECKPOINT_JSON})")
    meta = read_json(meta_path)
    verify_checkpoint_files(resume_from, meta)
    problems = []
    if meta.get("step") != step:
        problems.append(f"it is step {meta.get('step')}, the segment starts at step {step}")
    if step != 0 and not has_deepspeed_state(Path(resume_from), meta):
        problems.append(f"it has no {DEEPSPEED_DIR}/ state (only a segment's last step has)")
    if meta.get("data_fingerprint") != data_fp:
        problems.append(
            f"it was trained on data {meta.get('data_fingerprint')}, the samples are {data_fp}"
        )
    if meta.get("config_hash") != cfg_hash:
        problems.append(
            f"its model/training config hash {meta.get('config_hash')} differs from {cfg_hash}"
        )
    if (meta.get("variant"), meta.get("size")) != (variant, size):
        problems.append(f"it is {meta.get('variant')}/{meta.get('size')}, not {variant}/{size}")
    if step != 0 and engine_stage is not None and meta.get("zero_stage") != engine_stage:
        problems.append(
            f"its DeepSpeed state is ZeRO-{meta.get('zero_stage')}, this job runs "
            f"ZeRO-{engine_stage}"
        )
    saved_tp = meta.get("tensor_parallel", 1)
    if step != 0 and saved_tp != tensor_parallel:
        problems.append(
            f"its DeepSpeed state is sharded for tensor parallelism {saved_tp}, this job runs "
            f"{tensor_parallel}: resume with model_parallel {saved_tp} (another tensor-parallel "
            "size can only start from a step-0 checkpoint's weights)"
        )
    if step != 0 and zero_stage >= 1 and meta.get("world_size") != world_size:
        problems.append(
            f"its ZeRO state has {meta.get('world_size')} rank shards, this job has {world_size}"
        )
    if problems:
        raise TrainingError(f"cannot resume from {resume_from}: " + "; ".join(problems))
    return meta


@dataclass(frozen=True)
class ResumeKey:
    """What a checkpoint must have been made with for this job to resume from it."""

    data_fp: str
    cfg_hash: str
    world_size: int
    zero_stage: int
    variant: str
    size: str
    engine_stage: int
    tensor_parallel: int = 1

    def check(self, ckpt: Path, step: int) -> dict[str, Any]:
        """The checkpoint's record, or TrainingError naming why it cannot start this job."""
        return check_resume(
            ckpt,
            step=step,
            data_fp=self.data_fp,
            cfg_hash=self.cfg_hash,
            world_size=self.world_size,
            zero_stage=self.zero_stage,
            variant=self.variant,
            size=self.size,
            engine_stage=self.engine_stage,
            tensor_parallel=self.tensor_parallel,
        )


def load_deepspeed_state(engine, ckpt: Path, step: int) -> None:
    """Restore weights, Adam moments, LR scheduler, step counter and RNG state from `ckpt`."""
    path, client = engine.load_checkpoint(str(Path(ckpt) / DEEPSPEED_DIR), tag=DEEPSPEED_TAG)
    if path is None or client.get("step") != step:
        raise TrainingError(f"{ckpt}/{DEEPSPEED_DIR}: DeepSpeed state did not load")
    set_rng_state(client.get("rng"))


@dataclass(frozen=True)
class CheckpointWriter:
    """Saves the engine's checkpoints of one segment, each with the training record `meta`
    (what every checkpoint of the run shares) plus its step, the data seen and the step's
    metrics."""

    engine: Any
    meta: Mapping[str, Any]
    batch: int
    seq_length: int
    rank: int
    tokenizer_path: str | os.PathLike
    tp_group: Any = None  # the tensor-parallel group, whose first replica gathers the weights
    dp_rank: int = 0

    def record(self, step: int, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            **self.meta,
            "step": step,
            "samples_seen": step * self.batch,
            "tokens_seen": step * self.batch * self.seq_length,
            "metrics": metrics,
        }

    def save(
        self, out_dir: Path, step: int, metrics: Mapping[str, Any] | None, *, with_deepspeed: bool
    ) -> None:
        save_checkpoint(
            self.engine,
            Path(out_dir),
            self.record(step, metrics),
            with_deepspeed=with_deepspeed,
            rank=self.rank,
            tokenizer_path=self.tokenizer_path,
            seq_length=self.seq_length,
            tp_group=self.tp_group,
            dp_rank=self.dp_rank,
        )
