"""What training raises, and the exit codes its command lines turn that into.

A launcher (torchrun, srun) and Snakemake only see exit codes: 2 for a `TrainingError` (the
inputs are wrong; retrying will not help) and `PREEMPTED_EXIT` for `Preempted` (the state is
saved; run the job again to continue from it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class TrainingError(RuntimeError):
    """A problem the user can fix (wrong inputs, incompatible resume point); names what/where."""


class Preempted(Exception):
    """Training stopped on a signal after saving its resumable state."""


class LaunchFailed(TrainingError):
    """The distributed launcher's ranks exited with `code` (neither success nor preemption)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# How a command line's ranks say why they stopped, a line each on stderr (run_cli); a launcher's
# caller reads them back from the launcher's stderr (workflow.train.dispatch).
ERROR_LINE = "error: "
PREEMPTED_LINE = "preempted: "

# EX_TEMPFAIL: "try again". A preempted segment saved its state and exits with this code, so
# the retried job (Snakemake --retries, Slurm requeue) continues from that state.
PREEMPTED_EXIT = 75


def run_cli(main: Callable[[], Any]) -> None:
    """Run a training command line's `main`; exit 2 on TrainingError (its message on stderr),
    PREEMPTED_EXIT on Preempted."""
    try:
        main()
    except TrainingError as e:
        _say(ERROR_LINE + str(e))
        sys.exit(2)
    except Preempted as e:
        _say(PREEMPTED_LINE + str(e))
        sys.exit(PREEMPTED_EXIT)


def _say(line: str) -> None:
    # one write: a launcher's ranks share its stderr, unbuffered (torchrun), and
    # workflow.train.dispatch reads these lines back from it
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
