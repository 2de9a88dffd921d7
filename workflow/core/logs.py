"""Send a job's output to its log file: stdout, stderr (also of C code and child processes,
e.g. DeepSpeed's compiler probes) and the logging module."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path


@contextlib.contextmanager
def _redirect_fds(f):
    """Point file descriptors 1 and 2 at `f` for the block, then restore them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None, level: int = logging.INFO):
    """Redirect stdout/stderr and root logging to `path` (appending) for the block."""
    if not path:
        yield logging.getLogger("pythia")
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "a", buffering=1) as f,
        _redirect_fds(f),
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(level)
        try:
            yield logging.getLogger("pythia")
        except BaseException:
            logging.getLogger("pythia").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
