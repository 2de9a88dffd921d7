# pythia-workflow: the Pythia suite (arXiv 2304.01373) as one DAG.
#   download -> tokenizer/tokenize -> dedup -> pack+shuffle -> train (segments) -> hub
#   -> lm-eval over checkpoints -> tables and figures
# The embedded default (config/config.yaml) is a tiny suite that runs on a laptop CPU;
# config/pythia.yaml is the paper's suite. Only the config differs.

from snakemake.utils import min_version

min_version("9.0")


# A --configfile describes a whole suite and replaces the embedded default (no merging of the
# two model lists).
if not workflow.config_settings.configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/hub.smk"
include: "rules/eval.smk"
include: "rules/term_frequency.smk"
include: "rules/intervention.smk"
include: "rules/memorization.smk"
include: "rules/figures.smk"
include: "rules/plan.smk"


# the final targets of every stage (workflow/plan/jobs.py: SuiteJobs.final_targets)
rule all:
    default_target: True
    input:
        JOBS.final_targets(),
