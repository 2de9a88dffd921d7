"""Snakemake adapter: publish a training segment's checkpoints, each as branch step{N}, and
write the job's receipt (each branch's commit and file digests) once all are published."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.hub.layout import repo_id_for
from workflow.hub.upload import publish_checkpoint

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    hub, p = sm.params.hub, sm.params
    repo_id = repo_id_for(hub["org"], hub["repo_template"], p.size, p.variant)
    receipts = []
    for step, checkpoint in zip(p.steps, sm.input.checkpoints, strict=True):
        receipt = publish_checkpoint(
            checkpoint,
            repo_id=repo_id,
            branch=f"step{step}",
            backend=hub["backend"],
            local_root=p.local_root,
            endpoint=hub["endpoint"],
            private=hub["private"],
            final=step == p.final_step,
            force=hub["force"],
            project_url=hub["project_url"],
        )
        log.info("published: %s", receipt)
        receipts.append(receipt)
    write_json(sm.output[0], {"repo_id": repo_id, "steps": list(p.steps), "receipts": receipts})
