"""Snakemake adapter: (k, l)-memorization scores of one shard of a checkpoint's seen samples."""

import os

from workflow.core.process import short_lived_process

short_lived_process()  # before torch loads: see the module

# a local checkpoint: nothing to fetch
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

from workflow.core.logs import log_to  # noqa: E402
from workflow.studies.memorization.scores import score_shard, scoring_devices  # noqa: E402

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    mem = sm.params.memorization
    score_shard(
        sm.input.checkpoint,
        sm.input.samples[0],
        sm.params.spec,
        int(sm.wildcards.part),
        sm.params.schedule,
        sm.output[0],
        batch_size=mem["batch_size"],
        suppress_eod=mem["suppress_eod"],
        devices=scoring_devices(mem["gpus_per_job"]),
        dtype=mem["dtype"],
        log=log,
    )
