"""Run a training segment where its model asks: in this process on one device, or through the
distributed launcher (torchrun on one node, srun on several: launch.py) when the model is
trained on several GPUs or nodes. The suite's segments (scripts/train/train_segment.py) and the
intervention's arms (workflow/studies/intervention/arms.py) both start training here.

Either way the outcome reads the same: the per-step metrics (in-process; the launcher's ranks
log theirs), `Preempted` when the segment stopped on a signal with its state saved, and
`LaunchFailed` (a TrainingError) carrying the exit code of failed ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workflow.core.config import Segment, SuiteConfig
from workflow.train.errors import PREEMPTED_EXIT, LaunchFailed, Preempted
from workflow.train.launch import distributed_command, needs_launcher


def run_segment(
    suite: SuiteConfig,
    *,
    size: str,
    variant: str,
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    segment: Segment,
    out_template: str,
    resume_from: Path | None,
    state_dir: str | os.PathLike,
    log: Callable[[str], Any] = print,
    metrics_path: str | os.PathLike | None = None,
    token_map: str | os.PathLike | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    producer: str | None = None,
    cpus_per_task: int = 1,
) -> list[dict[str, Any]]:
    """Train `segment` of `size`, saving its checkpoints under `out_template` ("{step}").

    `token_map` (a token-map file, data.read_token_map) and `extra_meta` reach the training
    either way; `producer` (the rule's name, which integrity errors cite) is recorded by
    in-process training only, as before one dispatch served both paths. `state_dir` holds the
    suite JSON the launcher's ranks read; `cpus_per_task` goes to srun."""
    spec = suite.models[size]
    if not needs_launcher(spec):
        # Here: torch, DeepSpeed and transformers load only in a process that trains.
        from workflow.train.segment import out_dirs_of, train_segment

        meta = {**(extra_meta or {}), **({"producer": producer} if producer else {})}
        return train_segment(
            suite,
            size=size,
            variant=variant,
            samples_prefix=samples_prefix,
            tokenizer_path=tokenizer_path,
            segment=segment,
            out_dirs=out_dirs_of(out_template, segment.steps),
            resume_from=resume_from,
            log=log,
            metrics_path=metrics_path,
            token_map=token_map,
            extra_meta=meta or None,
        )
    extra_args = [] if token_map is None else ["--token-map", str(token_map)]
    if extra_meta is not None:
        extra_args += ["--extra-meta", json.dumps(extra_meta)]
    cmd = distributed_command(
        suite,
        spec,
        variant=variant,
        samples_prefix=str(samples_prefix),
        tokenizer=str(tokenizer_path),
        segment=segment,
        out_template=out_template,
        resume_from=resume_from,
        state_dir=Path(state_dir),
        metrics_path=metrics_path,
        cpus_per_task=cpus_per_task,
        extra_args=extra_args,
    )
    log(f"launching: {' '.join(cmd)}")
    code = subprocess.run(cmd).returncode
    name = f"{variant}/{size} steps {max(segment.start, 0) + 1}..{segment.end}"
    if code == PREEMPTED_EXIT:
        raise Preempted(f"{name}: preempted, run again to continue")
    if code:
        raise LaunchFailed(f"{name}: training exited with {code}", code)
    return []
