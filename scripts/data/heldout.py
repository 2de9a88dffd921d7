"""Snakemake adapter: the held-out documents, the last of the last raw shard."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.heldout import split_heldout

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    stats = split_heldout(sm.input[0], sm.output.heldout, sm.params.heldout_documents)
    log.info("held out: %s", stats)
    write_json(sm.output.stats, stats)
