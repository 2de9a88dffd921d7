"""Snakemake adapter: join raw Pile-style shards into the train and held-out corpus."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.corpus_from_shards import concat_jsonl

with log_to(snakemake.log[0]) as log:  # noqa: F821
    out = snakemake.output  # noqa: F821
    stats = concat_jsonl(
        list(snakemake.input),  # noqa: F821
        out.train,
        out.heldout,
        snakemake.params.heldout_documents,  # noqa: F821
    )
    log.info("corpus: %s", stats)
    write_json(out.stats, stats)
