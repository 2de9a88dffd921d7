"""Snakemake adapter: MinHash signatures and sorted band keys of one corpus shard."""

from workflow.core.logs import log_to
from workflow.data.dedup_signatures import signature_shard

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    log.info("signing %s", sm.params.shard.name())
    meta = signature_shard(sm.params.shard, sm.output.signatures, **sm.params.dedup)
    log.info("signatures: %s", meta)
