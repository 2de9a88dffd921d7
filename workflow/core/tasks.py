"""The eval tasks of a suite by name: the ones the pipeline writes itself (task files built by
rules from the corpus or from templates) and lm-eval's own, whose data is fetched once
(rule prefetch_eval_data) and whose names are checked before any training (check_eval_tasks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# built from the held-out documents of a text source (rules cloze_task and choice_tasks)
CLOZE_TASK = "lambada_cloze"
CHOICE_TASKS = ("piqa_style", "sciq_style", "winogrande_style")  # need the generated corpus
EMBEDDED_TASKS = (CLOZE_TASK, *CHOICE_TASKS)
# built from templates over the generated corpus's occupations (rule bias_tasks)
BIAS_TASKS = ("crows_pairs_style", "winobias_style_pro", "winobias_style_anti")


def intervention_tasks(config: Mapping[str, Any]) -> list[str]:
    """What an intervention's checkpoints are evaluated on: bias, then LAMBADA."""
    iv = config["intervention"]
    return [iv["crows_task"], *iv["winobias_tasks"], iv["lambada_task"]]


def embedded_choice_tasks(config: Mapping[str, Any]) -> list[str]:
    """The multiple-choice tasks of `eval.tasks` the pipeline builds (rule choice_tasks)."""
    return [t for t in config["eval"]["tasks"] if t in CHOICE_TASKS]


def generated_bias_tasks(config: Mapping[str, Any]) -> list[str]:
    """The intervention's bias tasks the pipeline builds (rule bias_tasks)."""
    iv = config["intervention"]
    return [t for t in [iv["crows_task"], *iv["winobias_tasks"]] if t in BIAS_TASKS]


def remote_tasks(config: Mapping[str, Any]) -> list[str]:
    """lm-eval's own tasks of the suite, each once: those of `eval.tasks`, and those of the
    intervention when it has runs."""
    iv_tasks = intervention_tasks(config) if config["intervention"]["runs"] else []
    embedded = embedded_choice_tasks(config)
    return list(
        dict.fromkeys(
            t
            for t in [*config["eval"]["tasks"], *iv_tasks]
            if t != CLOZE_TASK and t not in embedded and t not in BIAS_TASKS
        )
    )
