"""Snakemake adapter: one arm of an intervention run (pronoun-swapped or control continuation)."""

import sys
from pathlib import Path

from workflow.core.config import SuiteConfig
from workflow.core.logs import log_to
from workflow.core.process import short_lived_process
from workflow.studies.intervention.arms import run_arm
from workflow.train.errors import PREEMPTED_EXIT, LaunchFailed, Preempted

sm = snakemake  # noqa: F821
short_lived_process()  # torch, transformers and DeepSpeed load below: see the module
with log_to(sm.log[0]) as log:
    suite = SuiteConfig.from_dict(sm.config)
    run = suite.interventions[sm.params.run]
    try:
        run_arm(
            suite,
            run,
            arm=sm.params.arm,
            samples_prefix=sm.input.samples[0][: -len(".bin")],
            tokenizer_path=sm.input.tokenizer,
            start_checkpoint=sm.input.start,
            out_template=sm.params.out_template,
            swap_json=sm.input.swap or None,
            log=log.info,
            state_dir=Path(sm.log[0]).parent,
        )
    except Preempted as e:  # state saved: exit "try again", the retry continues from it
        log.warning("%s", e)
        sys.exit(PREEMPTED_EXIT)
    except LaunchFailed as e:  # the launcher's exit code is the job's
        log.error("%s", e)
        sys.exit(e.code)
