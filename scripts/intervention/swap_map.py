"""Snakemake adapter: the intervention's pronoun map, derived from the suite's tokenizer."""

from workflow.core.logs import log_to
from workflow.studies.intervention.arms import write_swap_map

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    m = write_swap_map(sm.input[0], sm.output[0], dict(sm.params.swap))
    for p in m["pairs"]:
        log.info("%r (%d) -> %r (%d)", p["from"], p["from_id"], p["to"], p["to_id"])
    if m["unswappable"]:
        log.warning("forms that are not one token (not swapped): %s", m["unswappable"])
