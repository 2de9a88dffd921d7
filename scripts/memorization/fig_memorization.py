"""Snakemake adapter: Fig. 3, memorized samples per block against Poisson (Q-Q), per variant."""

from workflow.core.io import read_json
from workflow.core.logs import log_to
from workflow.studies.memorization.figure import plot_poisson_qq

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    panels = [read_json(p) for p in sm.input]
    for panel, variant in zip(panels, sm.params.variants, strict=True):
        panel["label"] = variant
    plot_poisson_qq(
        panels,
        sm.output.pdf,
        sm.output.png,
        title=f"{sm.wildcards.size}, step {sm.wildcards.step}: memorized samples per block",
    )
