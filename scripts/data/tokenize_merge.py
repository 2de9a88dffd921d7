"""Snakemake adapter: join the tokenized shards into one dataset (one job's bytes)."""

from workflow.core.logs import log_to
from workflow.data.tokenize_merge import merge_stats, merge_tokenized

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    prefixes = sm.params.prefixes
    log.info("merged: %s", merge_tokenized(prefixes, sm.output[0][: -len(".bin")]))
    log.info("stats: %s", merge_stats([f"{p}.json" for p in prefixes], sm.output.stats))
