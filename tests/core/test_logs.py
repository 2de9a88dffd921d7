"""A job's log file receives Python output, logging, and output of child processes."""

import logging
import subprocess

from workflow.core.logs import log_to


def test_log_to_captures_python_logging_and_children(tmp_path, capfd):
    log = tmp_path / "logs" / "job.log"
    with log_to(log) as logger:
        print("from print")
        logger.info("from logging")
        logging.getLogger("deepspeed").warning("from a library")
        subprocess.run(["sh", "-c", "echo from a child >&2"], check=True)
    text = log.read_text()
    for expected in ("from print", "from logging", "from a library", "from a child"):
        assert expected in text
    out, err = capfd.readouterr()
    assert "from a child" not in out + err


def test_log_to_records_the_failure(tmp_path):
    log = tmp_path / "job.log"
    try:
        with log_to(log):
            raise ValueError("bad record at line 3")
    except ValueError:
        pass
    assert "bad record at line 3" in log.read_text()
