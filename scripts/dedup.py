"""Snakemake adapter: MinHashLSH near-duplicate detection over the corpus."""

from pathlib import Path

from workflow.dedup import deduplicate, write_dedup_outputs
from workflow.logs import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    result = deduplicate(sm.input.corpus, **sm.params.dedup)
    write_dedup_outputs(result, Path(sm.output.kept).parent)
    log.info("dedup: %s", result.stats)
