"""Snakemake adapter: train one segment of one model (in-process on one device, or through a
distributed launcher when the model asks for several GPUs/nodes)."""

import subprocess
import sys
from pathlib import Path

from workflow.core.config import Segment, SuiteConfig
from workflow.core.logs import log_to
from workflow.train.launch import distributed_command, needs_launcher
from workflow.train.segment import PREEMPTED_EXIT, Preempted, train_segment

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    suite = SuiteConfig.from_dict(sm.config)
    p = sm.params
    segment = Segment(p.start, p.end, tuple(p.steps))
    out_dirs = {s: Path(p.out_template.format(step=s)) for s in p.steps}
    resume = Path(sm.input.resume[0]) if sm.input.resume else None
    samples_prefix = sm.input.samples[0][: -len(".bin")]
    spec = suite.models[p.size]
    metrics = sm.output.get("metrics") or None  # the init segment has no steps to log
    if needs_launcher(spec):
        cmd = distributed_command(
            suite,
            spec,
            variant=sm.wildcards.variant,
            samples_prefix=samples_prefix,
            tokenizer=sm.input.tokenizer,
            segment=segment,
            out_template=p.out_template,
            resume_from=resume,
            state_dir=Path(sm.log[0]).parent,
            metrics_path=metrics,
            cpus_per_task=suite.raw["compute"]["cpus_per_gpu"],
        )
        log.info("launching: %s", " ".join(cmd))
        code = subprocess.run(cmd).returncode
        if code:
            log.error("training exited with %d%s", code, " (preempted)" * (code == PREEMPTED_EXIT))
            sys.exit(code)
    else:
        try:
            train_segment(
                suite,
                size=p.size,
                variant=sm.wildcards.variant,
                samples_prefix=samples_prefix,
                tokenizer_path=sm.input.tokenizer,
                segment=segment,
                out_dirs=out_dirs,
                resume_from=resume,
                log=log.info,
                metrics_path=metrics,
                # named by the integrity checks when a checkpoint is found damaged
                extra_meta={"producer": sm.rule},
            )
        except Preempted as e:  # state saved: exit "try again", the retry continues from it
            log.warning("%s", e)
            sys.exit(PREEMPTED_EXIT)
