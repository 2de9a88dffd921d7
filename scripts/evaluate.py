"""Snakemake adapter: lm-evaluation-harness on one checkpoint."""

from pathlib import Path

from workflow.evaluate import evaluate_checkpoint
from workflow.io import write_json
from workflow.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    ev = sm.params.eval
    result = evaluate_checkpoint(
        sm.input.checkpoint,
        tasks_dir=str(Path(sm.input.task).parent),
        tasks=ev["tasks"],
        num_fewshot=int(sm.wildcards.shots),
        batch_size=ev["batch_size"],
        limit=ev["limit"],
    )
    log.info("results: %s", result["results"])
    write_json(sm.output[0], result)
