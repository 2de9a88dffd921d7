import re
import sys
from pathlib import Path

# The library is importable from the workflow's base directory in every job, also inside a
# conda env or a Slurm job (jobs inherit the environment of the Snakemake process).
sys.path.insert(0, workflow.basedir)

from workflow import export_library_path
from workflow.core.config import ConfigError, SuiteConfig, validate_config
from workflow.data.corpus import occupation_subset
from workflow.plan.resources import check_node_fit, eval_resources, train_resources
from workflow.plan.estimate import rule_tag
from workflow.plan.profiles import check_profile_variables
from workflow.data.releases import release_for

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
except ConfigError as e:
    raise WorkflowError(str(e)) from None


# After the DAG is built, before the first job is submitted; a dry run (a plan) submits nothing
# and needs no cluster settings, and does not get here.
onstart:
    try:
        check_profile_variables(_default_resource_texts())
    except ValueError as e:
        raise WorkflowError(str(e)) from None


RUN = str(SUITE.run_dir())
VARIANTS = list(SUITE.variants)
SIZES = list(SUITE.models)


wildcard_constraints:
    variant="|".join(VARIANTS),
    size="|".join(re.escape(s) for s in SIZES),
    step=r"\d+",
    shots=r"\d+",
    part=r"\d+",
    file=r"[^/]+",


def run_path(*parts):
    return "/".join([RUN, *parts])


def checkpoint_dir(variant, size, step):
    return run_path("models", variant, size, f"step{step}")


def samples_files(variant="{variant}"):
    return multiext(run_path("data", variant, "samples"), ".bin", ".idx", ".json")


def eval_targets():
    return [
        path
        for shots in config["eval"]["num_fewshot"]
        for path in expand(
            run_path("evals", "{variant}", "{size}", "step{step}", f"{shots}shot.json"),
            variant=VARIANTS,
            size=SIZES,
            step=SUITE.eval_steps(shots),
        )
    ]


def hub_receipts():
    return expand(
        run_path("hub", "{variant}", "{size}", "step{step}.json"),
        variant=VARIANTS,
        size=SIZES,
        step=SUITE.training.schedule,
    )


def table_steps():
    return config["eval"]["table_steps"] or [max(SUITE.eval_steps(0))]


def score_tables():
    return [
        run_path("tables", "scores", f"{shots}shot_step{step}_{variant}.{ext}")
        for shots in config["eval"]["num_fewshot"]
        for step in table_steps()
        if step in SUITE.eval_steps(shots)
        for variant in VARIANTS
        for ext in ("csv", "md")
    ]


def figure_targets():
    return [
        *expand(run_path("figures", "lambada_over_training.{ext}"), ext=["pdf", "png"]),
        *expand(
            run_path("figures", "over_training", "{task}.{ext}"),
            task=config["eval"]["tasks"],
            ext=["pdf", "png"],
        ),
        *(
            expand(
                run_path("figures", f"scores_by_size_step{table_steps()[0]}.{{ext}}"),
                ext=["pdf", "png"],
            )
            if "deduped" in VARIANTS
            else []
        ),
    ]


def get_final_output():
    trained = config["checkpoints"]["source"] == "trained"
    return [
        *figure_targets(),
        run_path("tables", "evals.csv"),
        *score_tables(),
        *(
            [run_path("tables", "compare_paper.csv")]
            if config["eval"]["reference"]
            else []
        ),
        *TERM_FREQUENCY_TARGETS,
        # published checkpoints are not re-uploaded
        *(hub_receipts() if trained else []),
        *intervention_targets(),
        *MEMORIZATION_TARGETS,
        run_path("plan", "jobs.csv"),
    ]


# --- the gender-bias intervention (rules/intervention.smk)

IV = config["intervention"]
GENERATOR = (
    config["data"]["generator"] if config["data"]["source"] == "generated" else None
)
INTERVENTIONS = (
    SUITE.interventions if config["checkpoints"]["source"] == "trained" else []
)
GENERATED_BIAS_TASKS = [
    t
    for t in [IV["crows_task"], *IV["winobias_tasks"]]
    if t in ("crows_pairs_style", "winobias_style_pro", "winobias_style_anti")
]


def intervention_dir(run, arm, step):
    """Checkpoints of an arm: `intervention7/step{N}` beside the model's own steps; the
    baseline is the model's own checkpoint, or its `control7` continuation."""
    if arm == "baseline" and (step == run.start or IV["baseline"] == "main"):
        return checkpoint_dir(run.variant, run.size, step)
    kind = (
        run.name
        if arm == "intervention"
        else run.name.replace("intervention", "control")
    )
    return run_path("models", run.variant, run.size, kind, f"step{step}")


def intervention_evals(run):
    """(checkpoint, eval JSON) of both arms: the baseline from the start, the intervention
    over the window (at the start both arms are the same weights)."""
    pairs = []
    for arm in ("baseline", "intervention"):
        steps = ([run.start] if arm == "baseline" else []) + list(run.window)
        for step in steps:
            pairs.append(
                (
                    intervention_dir(run, arm, step),
                    run_path(
                        "evals",
                        "intervention",
                        run.size,
                        run.name,
                        arm,
                        f"step{step}.json",
                    ),
                )
            )
    return pairs


def intervention_targets():
    if not INTERVENTIONS:
        return []
    return [
        run_path("tables", "intervention.csv"),
        *expand(
            run_path("figures", "intervention_{fig}.{ext}"),
            fig=["crows_pairs", "winobias", "lambada"],
            ext=["pdf", "png"],
        ),
    ]
