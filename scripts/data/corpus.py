"""Snakemake adapter: generate the embedded mini-corpus."""

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.corpus import generate_corpus

with log_to(snakemake.log[0]) as log:  # noqa: F821
    out = snakemake.output  # noqa: F821
    stats = generate_corpus(out.train, out.heldout, **snakemake.params.generator)  # noqa: F821
    log.info("corpus: %s", stats)
    write_json(out.stats, stats)
