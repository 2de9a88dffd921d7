"""Snakemake adapter: lm-evaluation-harness on several local checkpoints of one model, each with
its shot counts."""

import os

from workflow.core.process import short_lived_process

short_lived_process()  # before torch loads: see the module

# A local checkpoint and local task files: nothing to fetch, so forbid the Hub before any
# Hugging Face library is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from workflow.core.logs import log_to  # noqa: E402
from workflow.eval.evaluate import evaluate_checkpoints  # noqa: E402


def _tasks_dir(inputs):
    """The folder of our task YAMLs (cloze and choice tasks), if any is used."""
    local = []
    for key in ("task", "choice_tasks"):
        value = inputs.get(key) or []
        local += [value] if isinstance(value, str) else list(value)
    return str(Path(local[0]).parent) if local else None


sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    ev = sm.params.eval
    results = evaluate_checkpoints(
        [checkpoint for checkpoint, _ in sm.params.runs],  # (checkpoint, shots) of each output
        list(sm.output),
        tasks_dir=_tasks_dir(sm.input),
        tasks=ev["tasks"],
        num_fewshot=[int(shots) for _, shots in sm.params.runs],
        batch_size=ev["batch_size"],
        limit=ev["limit"],
        producer=sm.rule,
    )
    for path, result in zip(sm.output, results, strict=True):
        log.info("%s: %s (%.1f s)", path, result["results"], result["seconds"])
