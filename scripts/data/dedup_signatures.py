"""Snakemake adapter: MinHash signatures of one byte range of the corpus (dedup scatter)."""

from workflow.core.logs import log_to
from workflow.data.dedup_signatures import signature_shard

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    meta = signature_shard(
        sm.input.corpus,
        int(sm.wildcards.part),
        sm.params.dedup["shards"],
        sm.output.signatures,
        **sm.params.dedup,
    )
    log.info("signatures: %s", meta)
