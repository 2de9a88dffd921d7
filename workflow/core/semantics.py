"""Cross-field rules of a config the schema cannot express, one check per section; each problem
names its key path. `workflow.core.config.validate_config` runs them after the schema."""

from __future__ import annotations

from typing import Any

from workflow.core.schedule import config_schedule, intervention_start
from workflow.core.tasks import CHOICE_TASKS, EMBEDDED_TASKS
from workflow.core.validation import ConfigError

RELEASED_SOURCES = ("pythia_preshuffled", "pythia_idxmaps")

Config = dict[str, Any]


def check_semantics(config: Config, source: str) -> None:
    """Raise one ConfigError listing every problem of a schema-valid config."""
    problems = _model_problems(config) + _eval_problems(config)
    problems += _intervention_problems(config)
    problems += _data_problems(config) + _memorization_problems(config)
    if problems:
        raise ConfigError(f"invalid {source}:\n" + "\n".join(f"  {p}" for p in problems))


def _model_problems(config: Config) -> list[str]:
    problems = []
    t = config["training"]
    for name, m in config["models"].items():
        if m["hidden_size"] % m["num_attention_heads"]:
            problems.append(
                f"models.{name}: hidden_size {m['hidden_size']} is not divisible by "
                f"num_attention_heads {m['num_attention_heads']}"
            )
            continue
        head = m["hidden_size"] // m["num_attention_heads"]
        rot = int(head * t["rotary_pct"])
        if rot % 2:
            problems.append(
                f"models.{name}: rotary dims int({head} * rotary_pct {t['rotary_pct']}) = {rot} "
                "must be even"
            )
        tp = m["model_parallel"]
        if tp > 1 and (m["gpus"] % tp or m["num_attention_heads"] % tp):
            problems.append(
                f"models.{name}.model_parallel: {tp} tensor-parallel ranks must hold whole "
                f"attention heads ({m['num_attention_heads']}) and fit in one node: gpus (per "
                f"node) {m['gpus']} must be a multiple of it"
            )
        dp = max(1, m["gpus"] * m["nodes"]) // m["model_parallel"]
        if m["micro_batch_size"] is not None and t["global_batch_size"] % (
            m["micro_batch_size"] * max(dp, 1)
        ):
            problems.append(
                f"models.{name}.micro_batch_size: global_batch_size {t['global_batch_size']} "
                f"is not a multiple of micro_batch_size {m['micro_batch_size']} "
                f"x data-parallel {dp}"
            )
    for s in config.get("sizes") or []:
        if s not in config["models"]:
            problems.append(
                f"sizes: {s!r} is not a model of `models` ({', '.join(config['models'])})"
            )
    return problems


def _eval_problems(config: Config) -> list[str]:
    problems = []
    last = config["training"]["train_iters"]
    for s in config.get("eval", {}).get("steps", []):
        if s > last:
            problems.append(f"eval.steps: step {s} is beyond training.train_iters {last}")
    for shots, steps in (config.get("eval", {}).get("fewshot_steps") or {}).items():
        if int(shots) not in config["eval"].get("num_fewshot", []):
            problems.append(
                f"eval.fewshot_steps.{shots}: {shots} is not in eval.num_fewshot "
                f"{config['eval'].get('num_fewshot')}"
            )
        for s in steps:
            if s > last:
                problems.append(
                    f"eval.fewshot_steps.{shots}: step {s} is beyond training.train_iters {last}"
                )
    return problems


def _intervention_problems(config: Config) -> list[str]:
    """The runs' sizes, variant and fractions. (A `main` baseline's window steps need not be
    scheduled: the main run saves them besides its schedule, SuiteConfig.segments.)"""
    problems = []
    iv = config.get("intervention") or {}
    t = config["training"]
    for i, r in enumerate(iv.get("runs", [])):
        where = f"intervention.runs[{i}]"
        if r["size"] not in config["models"]:
            problems.append(f"{where}.size: {r['size']!r} is not a model of `models`")
        if iv["variant"] not in config["variants"]:
            problems.append(f"intervention.variant: {iv['variant']!r} is not in variants")
        try:
            intervention_start(t["train_iters"], r["fraction"], iv["round_start_to"])
        except ConfigError as e:
            problems.append(f"{where}.fraction: {e}")
    return problems


def _data_problems(config: Config) -> list[str]:
    problems = []
    data = config["data"]
    tasks = set(config.get("eval", {}).get("tasks", []))
    if data["source"] == "pile_jsonl" and not data["pile"]["urls"]:
        problems.append("data.pile.urls: source 'pile_jsonl' needs at least one URL or path")
    if data["source"] in RELEASED_SOURCES:
        from workflow.core.releases import release_for

        repos = release_for(data).repos
        for v in config["variants"]:
            if v not in repos:
                problems.append(
                    f"variants: source {data['source']!r} has no {v!r} data (it has "
                    f"{', '.join(sorted(repos))}); drop {v!r} or add data.release.repos.{v}"
                )
        if data["tokenizer"]["kind"] != "pretrained":
            problems.append(
                f"data.tokenizer.kind: source {data['source']!r} is tokenized with GPT-NeoX-20B's "
                "tokenizer; set kind: pretrained"
            )
        if set(EMBEDDED_TASKS) & tasks:
            problems.append(
                f"eval.tasks: the embedded tasks are built from the held-out documents of a "
                f"text source; source {data['source']!r} has none (use lm-eval's own tasks)"
            )
    if set(CHOICE_TASKS) & tasks and data["source"] != "generated":
        problems.append(
            "eval.tasks: piqa_style, sciq_style and winogrande_style need the generated "
            "corpus (its domains and cloze targets)"
        )
    return problems


def _memorization_problems(config: Config) -> list[str]:
    """The `memorization:` section (the study's scoring runs only on scheduled checkpoints,
    with k + l tokens inside one sample row)."""
    mem = config.get("memorization") or {}
    if not mem.get("steps"):
        return []  # no memorization study
    t = config["training"]
    schedule = config_schedule(config)
    problems = []
    row = t["seq_length"] + 1
    k, n = mem["prompt_tokens"], mem["continuation_tokens"]
    if k + n > row:
        problems.append(
            f"memorization.prompt_tokens + continuation_tokens = {k} + {n} = {k + n} exceeds the "
            f"{row} tokens of a sample (training.seq_length {t['seq_length']} + 1); the paper "
            "uses 32 + 32 of 2049"
        )
    for s in mem["steps"]:
        if s not in schedule:
            problems.append(
                f"memorization.steps: step {s} is not a checkpoint of the schedule "
                f"(training.checkpoints; last step {t['train_iters']})"
            )
    for name in mem.get("sizes") or []:
        if name not in config["models"]:
            problems.append(
                f"memorization.sizes: {name!r} is not a model of `models` "
                f"({', '.join(config['models'])})"
            )
    for v in mem.get("variants") or []:
        if v not in config["variants"]:
            problems.append(f"memorization.variants: {v!r} is not in variants {config['variants']}")
    fig = mem.get("figure_size")
    if fig is not None and fig not in (mem.get("sizes") or config["models"]):
        problems.append(f"memorization.figure_size: {fig!r} is not a scored model")
    node_gpus = ((config.get("compute") or {}).get("node") or {}).get("gpus")
    if node_gpus and mem.get("gpus_per_job", 1) > node_gpus:
        problems.append(
            f"memorization.gpus_per_job: {mem['gpus_per_job']} GPUs, but a node has "
            f"{node_gpus} (compute.node.gpus); a shard job runs on one node"
        )
    return problems
