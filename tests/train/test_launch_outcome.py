"""What a training launch through torchrun comes back as. torchrun exits 1 whatever its ranks
exited with, so dispatch reads its failure summary: ranks that all saved their state and exited
75 (preempted) are `Preempted`, as they are when torchrun itself got the signal; anything else
is `LaunchFailed`, naming the failed ranks, their exit codes or signals and the ranks' errors.
Real torchrun, two ranks running a few lines of Python each."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from workflow.core.config import Segment
from workflow.train import dispatch
from workflow.train.errors import LaunchFailed, Preempted

# each rank: RANK from torchrun, then the case's body; a line to stderr is one write, as
# workflow.train.errors.run_cli writes it (torchrun's ranks write unbuffered)
PRELUDE = """
import os, signal, sys, time
rank = int(os.environ["RANK"])
"""


def torchrun(tmp_path, body: str) -> list[str]:
    script = tmp_path / "rank.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc_per_node=2", str(script)]


def run_segment(monkeypatch, tmp_path, cmd):
    """dispatch.run_segment of a model that needs the launcher, launching `cmd`."""
    monkeypatch.setattr(dispatch, "needs_launcher", lambda spec: True)
    monkeypatch.setattr(dispatch, "distributed_command", lambda *a, **k: cmd)
    return dispatch.run_segment(
        SimpleNamespace(models={"m": None}),
        size="m",
        variant="standard",
        samples_prefix=tmp_path / "samples",
        tokenizer_path=tmp_path / "tok.json",
        segment=Segment(0, 8, (8,)),
        out_template=str(tmp_path / "step{step}"),
        resume_from=None,
        state_dir=tmp_path,
        log=lambda _: None,
    )


def test_ranks_that_all_saved_and_exited_75_are_preempted(tmp_path, monkeypatch, capfd):
    cmd = torchrun(tmp_path, 'sys.stderr.write(f"preempted: rank {rank} saved\\n"); sys.exit(75)')
    code, lines = dispatch.launch(cmd)
    assert code == 1  # torchrun's, whatever its ranks' codes
    # the ranks' stderr passes through, and its end comes back
    err = capfd.readouterr().err
    assert "preempted: rank 0 saved" in err and "preempted: rank 1 saved" in err
    assert any("preempted: rank 1 saved" in line for line in lines)
    failed = dispatch.rank_failures(lines)
    # the first rank out is the root cause; torchrun may stop the other with SIGTERM first
    assert [f["exitcode"] for f in failed if f["root_cause"]] == [75]
    assert {f["exitcode"] for f in failed} <= {75, -15}
    with pytest.raises(Preempted, match=r"standard/m steps 1\.\.8: preempted, run again"):
        run_segment(monkeypatch, tmp_path, cmd)


def test_torchrun_stopped_by_the_signal_is_preempted(tmp_path, monkeypatch):
    """Slurm's time limit signals torchrun too: it forwards SIGTERM to its ranks and exits 1
    with no failure summary; the ranks save, say so and exit 75."""
    cmd = torchrun(
        tmp_path,
        """
        def stop(*_):
            sys.stderr.write("preempted: state saved\\n")
            sys.exit(75)
        signal.signal(signal.SIGTERM, stop)
        if rank == 0:
            time.sleep(2)
            os.kill(os.getppid(), signal.SIGTERM)  # torchrun, the ranks' parent
        time.sleep(60)
        """,
    )
    code, lines = dispatch.launch(cmd)
    assert code == 1 and not dispatch.rank_failures(lines)
    assert dispatch.preempted(code, lines)
    with pytest.raises(Preempted):
        run_segment(monkeypatch, tmp_path, cmd)


def test_a_failed_rank_is_named_with_its_error(tmp_path, monkeypatch):
    cmd = torchrun(
        tmp_path,
        """
        if rank == 1:
            raise RuntimeError("rank 1 could not read shard 7")
        time.sleep(60)  # torchrun stops the other rank when one fails
        """,
    )
    with pytest.raises(LaunchFailed) as failed:
        run_segment(monkeypatch, tmp_path, cmd)
    assert failed.value.code == 1
    message = str(failed.value)
    assert message.startswith("standard/m steps 1..8: training exited with 1 (")
    assert "rank 1 exit 1" in message
    assert message.endswith(": RuntimeError: rank 1 could not read shard 7")


def test_a_killed_rank_is_named_with_its_signal(tmp_path, monkeypatch):
    """A rank the kernel killed (out of memory, say) prints nothing; torchrun's summary names
    the signal."""
    cmd = torchrun(
        tmp_path,
        """
        if rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # torchrun stops the other rank when one fails
        """,
    )
    with pytest.raises(LaunchFailed, match=r"\(.*rank 1 Signal 9 \(SIGKILL\)") as failed:
        run_segment(monkeypatch, tmp_path, cmd)
    assert "Traceback" not in str(failed.value)


def test_a_training_error_is_its_message(tmp_path, monkeypatch):
    """A TrainingError in the ranks (run_cli: "error: ..." and exit 2) reaches the message."""
    cmd = torchrun(
        tmp_path,
        """
        sys.stderr.write("error: --resume-from step4 was saved with model_parallel 2, not 1\\n")
        sys.exit(2)
        """,
    )
    with pytest.raises(LaunchFailed, match=r"exit 2.*: --resume-from step4 was saved with"):
        run_segment(monkeypatch, tmp_path, cmd)


def test_a_summary_of_many_ranks_reads_in_rank_order():
    """torchrun's summary as it prints it (here for 12 ranks): ranks in numeric order, an entry
    without a rank number ignored, the root cause known."""

    def entry(rank, code, trace="To enable traceback see: https://pytorch.org/docs/..."):
        return [f"  rank      : {rank}", f"  exitcode  : {code} (pid: 1)", f"  traceback : {trace}"]

    lines = [
        "Failures:",
        *entry("10 (local_rank: 2)", -15, "Signal 15 (SIGTERM) received by PID 1"),
        *entry("<N/A>", "<N/A>"),
        "Root Cause (first observed failure):",
        *entry("2 (local_rank: 2)", 1),
    ]
    failed = dispatch.rank_failures(lines)
    assert [(f["rank"], f["exitcode"], f["root_cause"]) for f in failed] == [
        (10, -15, False),
        (2, 1, True),
    ]
    assert not dispatch.preempted(1, lines)
    assert dispatch.failure_summary(lines) == " (rank 2 exit 1, rank 10 Signal 15 (SIGTERM))"


def test_ranks_that_finished_exit_cleanly(tmp_path, monkeypatch):
    """A rank's command line destroys its process group before the interpreter exits
    (workflow.train.distributed.run_rank). Left to interpreter exit, gloo's worker threads
    aborted finished ranks (SIGABRT) in 12 of 20 such launches here; four in a row pass."""
    cmd = torchrun(
        tmp_path,
        """
        import torch
        import torch.distributed as dist
        from workflow.train.distributed import run_rank

        def main():
            dist.init_process_group("gloo")
            x, out = torch.ones(1000), torch.empty(2000)
            for _ in range(300):
                dist.all_gather_into_tensor(out, x, async_op=True).wait()

        run_rank(main)
        """,
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # our package
    for _ in range(4):
        code, lines = dispatch.launch(cmd)
        assert code == 0, dispatch.failure_summary(lines)
