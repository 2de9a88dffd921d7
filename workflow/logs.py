"""Send a job's output to its log file: stdout, stderr and the logging module."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None, level: int = logging.INFO):
    """Redirect stdout/stderr and root logging to `path` (appending) for the block."""
    if not path:
        yield logging.getLogger("pythia")
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "a", buffering=1) as f,
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
