"""Snakemake adapter: our results beside the published ones (eval.reference)."""

import pandas as pd

from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.eval.compare_paper import compare_with_reference

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    if not sm.params.reference:
        raise ValueError("eval.reference is not set in the config: nothing to compare with")
    table = compare_with_reference(pd.read_parquet(sm.input[0]), sm.params.reference)
    write_table(table, sm.output[0])
    found = table["ours"].notna().sum()
    log.info("%d of %d published values have a result of ours", found, len(table))
