"""Snakemake adapter: MinHashLSH over the joined signature shards (dedup gather)."""

from pathlib import Path

from workflow.core.logs import log_to
from workflow.data.dedup import gather_signatures, write_dedup_outputs

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    result = gather_signatures(sm.input.signatures, threshold=sm.params.dedup["threshold"])
    write_dedup_outputs(result, Path(sm.output.kept).parent)
    log.info("dedup: %s", result.stats)
