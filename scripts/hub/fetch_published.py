"""Snakemake adapter: one published checkpoint (branch step{N}) from the Hub, verified."""

from workflow.core.logs import log_to
from workflow.hub.fetch_published import fetch_published_checkpoint
from workflow.hub.layout import repo_id_for

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    ck = sm.params.checkpoints
    w = sm.wildcards
    receipt = fetch_published_checkpoint(
        repo_id_for(ck["org"], ck["repo_template"], w.size, w.variant),
        int(w.step),
        sm.output[0],
        final_step=sm.params.final_step,
        endpoint=ck["endpoint"],
    )
    log.info("fetched: %s", receipt)
