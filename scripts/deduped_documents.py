"""Snakemake adapter: the deduped variant's documents = the kept subset of the standard ones."""

import numpy as np

from workflow.dedup import select_documents
from workflow.io import write_json
from workflow.logs import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    stats = select_documents(
        sm.input.documents[0][: -len(".bin")],
        np.load(sm.input.kept),
        sm.output[0][: -len(".bin")],
    )
    log.info("deduped documents: %s", stats)
    write_json(sm.output.stats, stats)
