"""Snakemake adapter: the candidate near-duplicate pairs of one group of LSH bands."""

from workflow.core.logs import log_to
from workflow.data.dedup_buckets import bucket_pairs

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    meta = bucket_pairs(
        sm.params.signatures,
        int(sm.wildcards.group),
        sm.output.pairs,
        bands_per_job=sm.params.bands_per_job,
    )
    log.info("buckets: %s", meta)
