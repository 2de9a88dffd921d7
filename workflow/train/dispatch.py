"""Run a training segment where its model asks: in this process on one device, or through the
distributed launcher (torchrun on one node, srun on several: launch.py) when the model is
trained on several GPUs or nodes. The suite's segments (scripts/train/train_segment.py) and the
intervention's arms (workflow/studies/intervention/arms.py) both start training here.

Either way the outcome reads the same: the per-step metrics (in-process; the launcher's ranks
log theirs), `Preempted` when the segment stopped on a signal with its state saved, and
`LaunchFailed` (a TrainingError) carrying the exit code of failed ranks.

torchrun exits 1 whatever its ranks exited with, and prints which rank failed how in a summary
on its stderr: the launcher's stderr is passed through and its end read back, so that ranks all
preempted (exit 75) still read as `Preempted`, and a failure names its ranks, their exit codes
or signals, and the error the ranks printed.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workflow.core.config import Segment, SuiteConfig
from workflow.train.errors import (
    ERROR_LINE,
    PREEMPTED_EXIT,
    PREEMPTED_LINE,
    LaunchFailed,
    Preempted,
)
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
    code, stderr_tail = launch(cmd)
    name = f"{variant}/{size} steps {max(segment.start, 0) + 1}..{segment.end}"
    if preempted(code, stderr_tail):
        raise Preempted(f"{name}: preempted, run again to continue")
    if code:
        raise LaunchFailed(
            f"{name}: training exited with {code}{failure_summary(stderr_tail)}", code
        )
    return []


def launch(cmd: Sequence[str], keep: int = 400) -> tuple[int, list[str]]:
    """Run the launcher, its (and its ranks') stderr passed through to ours; returns its exit
    code and the last `keep` lines of that stderr."""
    tail: collections.deque[str] = collections.deque(maxlen=keep)
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, errors="replace") as proc:
        try:
            for line in proc.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                tail.append(line.rstrip("\n"))
        except BaseException:  # as subprocess.run: a stopped caller leaves no launcher behind
            proc.kill()
            raise
    return proc.returncode, list(tail)


_FIELD = re.compile(r"^\s*(rank|exitcode|traceback)\s*:\s*(.*?)\s*$")


def rank_failures(lines: Sequence[str]) -> list[dict[str, Any]]:
    """The failed ranks of torchrun's failure summary: rank, exitcode (negative: the signal),
    traceback (the signal's name, or where a traceback would be), and root_cause (the first
    failure torchrun saw, after which it stops the other ranks with SIGTERM)."""
    failures: list[dict[str, Any]] = []
    root_cause = False
    for line in lines:
        if line.startswith("Root Cause (first observed failure)"):
            root_cause = True
        m = _FIELD.match(line)
        if not m:
            continue
        key, value = m.groups()
        if key == "rank":
            rank = int(value.split()[0]) if value[:1].isdigit() else None
            failures.append({"rank": rank, "root_cause": root_cause})
        elif failures and key not in failures[-1]:
            if key == "traceback":
                failures[-1][key] = value
            elif re.match(r"-?\d+\b", value):
                failures[-1][key] = int(value.split()[0])
    return [f for f in failures if f["rank"] is not None and "exitcode" in f]


def rank_errors(lines: Sequence[str]) -> list[str]:
    """The errors the ranks printed, each once: a TrainingError's ERROR_LINE (run_cli)
    and the last line of each traceback, but for torchrun's own."""
    errors, in_traceback = [], False
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback = False
            if not line.startswith("torch.distributed.elastic."):
                errors.append(line)
        elif line.startswith(ERROR_LINE):
            errors.append(line[len(ERROR_LINE) :])
    return list(dict.fromkeys(errors))


def preempted(code: int, lines: Sequence[str]) -> bool:
    """Whether a launch that exited `code` stopped on a signal with its state saved. srun
    passes its ranks' PREEMPTED_EXIT on. torchrun exits 1: its summary's first failure is a
    rank that exited PREEMPTED_EXIT (the others exited so too, or were stopped by torchrun
    on their way out), or, when torchrun itself got the signal, there is no summary and its
    ranks printed PREEMPTED_LINE and no error. A rank leaves with PREEMPTED_EXIT only after
    the collective save (workflow.train.preempt), so the state is whole either way."""
    if code == PREEMPTED_EXIT or not code:
        return bool(code)
    failed = rank_failures(lines)
    if failed:
        return any(f["root_cause"] and f["exitcode"] == PREEMPTED_EXIT for f in failed) and all(
            f["exitcode"] == PREEMPTED_EXIT or f["exitcode"] < 0 for f in failed
        )
    return any(line.startswith(PREEMPTED_LINE) for line in lines) and not rank_errors(lines)


def failure_summary(lines: Sequence[str]) -> str:
    """What a failed launch's message adds: each failed rank's exit code or signal, then the
    errors its ranks printed (the last three)."""
    ranks = []
    failed = {f["rank"]: f for f in rank_failures(lines)}
    for f in sorted(failed.values(), key=lambda f: f["rank"]):
        how = f"exit {f['exitcode']}"
        if str(f.get("traceback", "")).startswith("Signal"):
            how = f["traceback"].split(" received")[0]
        ranks.append(f"rank {f['rank']} {how}")
    errors = rank_errors(lines)[-3:]
    return (
        (f" ({', '.join(ranks)})" if ranks else "")
        + "".join(f": {e}" for e in errors[:1])
        + "".join(f"; {e}" for e in errors[1:])
    )
