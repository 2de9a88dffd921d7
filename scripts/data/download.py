"""Snakemake adapter: download one raw shard (resumable, checksum-verified)."""

from workflow.core.logs import log_to
from workflow.data.download import download

with log_to(snakemake.log[0]) as log:  # noqa: F821
    info = download(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)  # noqa: F821
    log.info("downloaded %s", info)
