"""Snakemake adapter: tokenize one corpus shard into a Megatron MMapIndexedDataset."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.tokenize import tokenize_shard

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    shard = sm.params.shard
    log.info("tokenizing %s", shard.name())
    stats = tokenize_shard(
        shard,
        sm.input.tokenizer,
        sm.output[0][: -len(".bin")],
        append_eod=sm.params.append_eod,
        workers=sm.threads,
    )
    log.info("tokenized: %s", stats)
    write_json(sm.output[2], stats)
