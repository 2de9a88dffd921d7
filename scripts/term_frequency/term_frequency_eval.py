"""Snakemake adapter: the arithmetic tasks on several checkpoints of one model (per-x1 scores)."""

import os

from workflow.core.process import short_lived_process

short_lived_process()  # before torch loads: see the module

# Local checkpoints and local task files: forbid the Hub before any Hugging Face import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from workflow.core.io import write_checked_json  # noqa: E402
from workflow.core.logs import log_to  # noqa: E402
from workflow.studies.term_frequency.evaluate import evaluate_arithmetic  # noqa: E402

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    tasks = [Path(t).stem for t in sm.input.tasks]
    for checkpoint, out in zip(sm.input.checkpoints, sm.output, strict=True):
        result = evaluate_arithmetic(
            checkpoint,
            tasks_dir=Path(sm.input.tasks[0]).parent,
            tasks=tasks,
            batch_size=sm.params.batch_size,
        )
        result["producer"] = sm.rule  # with its sha256: the table refuses a changed file
        write_checked_json(out, result)
        log.info("%s: %s (%.1f s)", out, result["results"], result["seconds"])
