"""Snakemake adapter: MinHashLSH replayed over the bucket jobs' pairs: kept and dropped ids."""

from pathlib import Path

from workflow.core.logs import log_to
from workflow.data.dedup_clusters import write_clusters

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    stats = write_clusters(sm.params.signatures, sm.params.pairs, Path(sm.output.kept).parent)
    log.info("dedup: %s", stats)
