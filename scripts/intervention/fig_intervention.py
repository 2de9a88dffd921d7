"""Snakemake adapter: Fig. 1 (CrowS-Pairs), 2 (WinoBias) or 6 (LAMBADA) of the intervention."""

import pandas as pd

from workflow.core.logs import log_to
from workflow.studies.intervention.figures import plot_intervention

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    iv = sm.config["intervention"]
    tasks = {"crows": iv["crows_task"], "winobias": "winobias", "lambada": iv["lambada_task"]}
    plot_intervention(pd.read_csv(sm.input[0]), sm.params.fig, tasks, sm.output.pdf, sm.output.png)
    log.info("wrote %s", sm.output.pdf)
