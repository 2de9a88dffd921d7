"""Snakemake adapter: the deduped variant's documents = the kept subset of the standard ones,
and the token-reduction report."""

import json
from pathlib import Path

import numpy as np

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.deduped_documents import select_documents, token_reduction_report

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    stats = select_documents(
        sm.input.documents[0][: -len(".bin")],
        np.load(sm.input.kept),
        sm.output[0][: -len(".bin")],
    )
    write_json(sm.output.stats, stats)
    report = token_reduction_report(json.loads(Path(sm.input.dedup_stats).read_text()), stats)
    write_json(sm.output.report, report)
    log.info("dedup report: %s", report)
