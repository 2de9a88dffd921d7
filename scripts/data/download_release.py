"""Snakemake adapter: one file of a released Pythia dataset from the HF Hub, hash-verified."""

from pathlib import Path

from workflow.core.io import write_json
from workflow.core.logs import log_to
from workflow.data.download_release import download_release_file

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    out = Path(sm.output[0])
    receipt = download_release_file(sm.params.release, sm.wildcards.variant, out.name, out.parent)
    write_json(Path(sm.log[0]).with_suffix(".json"), receipt)
    log.info("downloaded: %s", receipt)
