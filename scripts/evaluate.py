"""Snakemake adapter: lm-evaluation-harness on one local checkpoint."""

import os

# A local checkpoint and local task files: nothing to fetch, so forbid the Hub before any
# Hugging Face library is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from workflow.evaluate import evaluate_checkpoint  # noqa: E402
from workflow.io import write_json  # noqa: E402
from workflow.logs import log_to  # noqa: E402

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    ev = sm.params.eval
    result = evaluate_checkpoint(
        sm.input.checkpoint,
        tasks_dir=str(Path(sm.input.task).parent) if sm.input.get("task") else None,
        tasks=ev["tasks"],
        num_fewshot=int(sm.wildcards.shots),
        batch_size=ev["batch_size"],
        limit=ev["limit"],
    )
    log.info("results: %s", result["results"])
    write_json(sm.output[0], result)
