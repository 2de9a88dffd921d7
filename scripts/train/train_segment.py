"""Snakemake adapter: train one segment of one model (in-process on one device, or through a
distributed launcher when the model asks for several GPUs/nodes: workflow.train.dispatch)."""

import sys
from pathlib import Path

from workflow.core.config import Segment, SuiteConfig
from workflow.core.logs import log_to
from workflow.core.process import short_lived_process
from workflow.train.dispatch import run_segment
from workflow.train.errors import PREEMPTED_EXIT, LaunchFailed, Preempted

sm = snakemake  # noqa: F821
short_lived_process()  # torch, transformers and DeepSpeed load below: see the module
with log_to(sm.log[0]) as log:
    suite = SuiteConfig.from_dict(sm.config)
    p = sm.params
    try:
        run_segment(
            suite,
            size=p.size,
            variant=p.variant,
            samples_prefix=sm.input.samples[0][: -len(".bin")],
            tokenizer_path=sm.input.tokenizer,
            segment=Segment(p.start, p.end, tuple(p.steps), tuple(p.keep_state)),
            out_template=p.out_template,
            resume_from=Path(sm.input.resume[0]) if sm.input.resume else None,
            state_dir=Path(sm.log[0]).parent,
            log=log.info,
            metrics_path=sm.output.get("metrics") or None,  # the init segment logs no steps
            # named by the integrity checks when a checkpoint is found damaged
            producer=sm.rule,
            cpus_per_task=suite.raw["compute"]["cpus_per_gpu"],
        )
    except Preempted as e:  # state saved: exit "try again", the retry continues from it
        log.warning("%s", e)
        sys.exit(PREEMPTED_EXIT)
    except LaunchFailed as e:  # the launcher's exit code is the job's
        log.error("%s", e)
        sys.exit(e.code)
