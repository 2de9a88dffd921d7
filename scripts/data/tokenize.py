"""Snakemake adapter: tokenize the corpus into a Megatron MMapIndexedDataset."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.tokenize import tokenize_documents

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    prefix = sm.output[0][: -len(".bin")]
    stats = tokenize_documents(
        sm.input.corpus,
        sm.input.tokenizer,
        prefix,
        append_eod=sm.params.append_eod,
        workers=sm.threads,
    )
    log.info("tokenized: %s", stats)
    write_json(sm.output.stats, stats)
