import functools
import re
import sys
from pathlib import Path

# The library is importable from the workflow's base directory in every job, also inside a
# conda env or a Slurm job (jobs inherit the environment of the Snakemake process).
sys.path.insert(0, workflow.basedir)

from workflow import export_library_path
from workflow.core.config import ConfigError, SuiteConfig, validate_config
from workflow.core.identity import config_hash
from workflow.core.tasks import BIAS_TASKS, CHOICE_TASKS, CLOZE_TASK
from workflow.data.planted import occupation_subset
from workflow.core.releases import release_for
from workflow.plan.jobs import SuiteJobs
from workflow.plan.profiles import check_profile_variables
from workflow.plan.resources import (
    check_gpu_memory,
    check_node_fit,
    eval_resources,
    forward_resources,
    memorization_flops,
    train_resources,
)

export_library_path(workflow.basedir)

# Validate once, fill the schema's defaults in place (scripts see them via snakemake.config).
try:
    _validated = validate_config(
        config,
        source=", ".join(map(str, workflow.config_settings.configfiles)) or "config",
    )
except ConfigError as e:
    raise WorkflowError(str(e)) from None
config.clear()
config.update(_validated)
SUITE = SuiteConfig.from_dict(config)


def _default_resource_texts():
    # the resources as written in the profile or on the command line, before evaluation
    dr = workflow.resource_settings.default_resources
    items = dr.items() if hasattr(dr, "items") else []
    return {name: getattr(res, "raw", res) for name, res in items}


# Before any job: a job that asks a node for more than it has, or a profile variable (Slurm
# account/partition) left unset, would otherwise only fail at submission, job by job.
try:
    check_node_fit(
        SUITE,
        source=", ".join(map(str, workflow.config_settings.configfiles)) or "config",
    )
    check_gpu_memory(
        SUITE, ", ".join(map(str, workflow.config_settings.configfiles)) or "config"
    )
except ConfigError as e:
    raise WorkflowError(str(e)) from None


# After the DAG is built, before the first job is submitted; a dry run (a plan) submits nothing
# and needs no cluster settings, and does not get here.
onstart:
    try:
        check_profile_variables(_default_resource_texts())
    except ValueError as e:
        raise WorkflowError(str(e)) from None


# The job list (workflow/plan/jobs.py): the per-job rules of rules/*.smk are declared over it,
# the compute plan estimates the same jobs, and `rule all` (Snakefile) builds its final targets.
JOBS = SuiteJobs(SUITE)
LAYOUT = JOBS.layout
VARIANTS = JOBS.variants
SIZES = JOBS.sizes
# what each model's weights depend on (hyperparameters, seed), a training param: a change
# reruns its segments and everything downstream instead of keeping old checkpoints
MODEL_HASHES = {
    (size, variant): config_hash(spec.for_variant(variant), SUITE.training)
    for size, spec in SUITE.models.items()
    for variant in VARIANTS
}


wildcard_constraints:
    variant="|".join(VARIANTS),
    size="|".join(re.escape(s) for s in SIZES),
    step=r"\d+",
    shots=r"\d+",
    part=r"\d+",
    file=r"[^/]+",


def run_path(*parts):
    return LAYOUT.path(*parts)


def checkpoint_dir(variant, size, step):
    return LAYOUT.checkpoint(variant, size, step)


def samples_files(variant="{variant}"):
    return multiext(LAYOUT.samples_prefix(variant), ".bin", ".idx", ".json")


def memorization_resources(wc):
    """Slurm resources of one shard (workflow/plan/resources.py); each resource of the rule is
    its own function of the wildcards, so the dict is computed once per shard."""
    return _shard_resources(wc.step, wc.size, int(wc.part))


@functools.cache
def _shard_resources(step, size, part):
    rows = JOBS.memorization.spec(step, size).shard_size(part)
    model = SUITE.models[size]
    flops = memorization_flops(SUITE, model, rows)
    return forward_resources(
        SUITE, model, flops, gpus=config["memorization"]["gpus_per_job"]
    )
