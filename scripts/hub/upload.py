"""Snakemake adapter: publish one checkpoint as branch step{N} and write its receipt."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.hub.layout import repo_id_for
from workflow.hub.upload import publish_checkpoint

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    hub = sm.params.hub
    w = sm.wildcards
    receipt = publish_checkpoint(
        sm.input.checkpoint,
        repo_id=repo_id_for(hub["org"], hub["repo_template"], w.size, w.variant),
        branch=f"step{w.step}",
        backend=hub["backend"],
        local_root=sm.params.local_root,
        endpoint=hub["endpoint"],
        private=hub["private"],
        final=int(w.step) == sm.params.final_step,
        force=hub["force"],
        project_url=hub["project_url"],
    )
    log.info("published: %s", receipt)
    write_json(sm.output[0], receipt)
