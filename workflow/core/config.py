"""Suite configuration: YAML -> validated (JSON schema, defaults filled) -> frozen dataclasses.

Config flows one way: the Snakefile (or a test) validates the raw mapping once with
`validate_config`, and every stage builds the typed view it needs with `SuiteConfig.from_dict`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "config.schema.yaml"
VARIANTS = ("standard", "deduped")


RELEASED_SOURCES = ("pythia_preshuffled", "pythia_idxmaps")


class ConfigError(ValueError):
    """A user-facing configuration problem; the message names the key path."""


def _extend_with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    def additional_with_defaults(validator, additional, instance, schema):
        # defaults inside additionalProperties schemas (the per-model mapping)
        if isinstance(instance, dict) and isinstance(additional, dict):
            known = set(schema.get("properties", {}))
            for name, value in instance.items():
                if name in known or not isinstance(value, dict):
                    continue
                for key, sub in additional.get("properties", {}).items():
                    if "default" in sub and key not in value:
                        value[key] = copy.deepcopy(sub["default"])
        yield from validator_class.VALIDATORS["additionalProperties"](
            validator, additional, instance, schema
        )

    return jsonschema.validators.extend(
        validator_class,
        {"properties": set_defaults, "additionalProperties": additional_with_defaults},
    )


_Validator = _extend_with_defaults(jsonschema.Draft202012Validator)


def load_schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def validate_config(raw: Mapping[str, Any], source: str = "config") -> dict:
    """Validate `raw` against the schema, fill defaults, and check cross-field rules.

    Returns a new dict; raises ConfigError naming every bad key path.
    """
    config = copy.deepcopy(dict(raw))
    if isinstance(config.get("checkpoints"), str):  # --config checkpoints=published
        config["checkpoints"] = {"source": config["checkpoints"]}
    fewshot = (config.get("eval") or {}).get("fewshot_steps")
    if isinstance(fewshot, dict):  # YAML `5: [...]` has int keys; JSON (and the schema) strings
        config["eval"]["fewshot_steps"] = {str(k): v for k, v in fewshot.items()}
    validator = _Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError(f"invalid {source}:\n" + "\n".join(lines))
    # Re-run once so defaults nested under defaults are filled too.
    for _ in validator.iter_errors(config):
        pass
    _check_semantics(config, source)
    return config


def _check_semantics(config: dict, source: str) -> None:
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
    for s in config.get("eval", {}).get("steps", []):
        if s > t["train_iters"]:
            problems.append(
                f"eval.steps: step {s} is beyond training.train_iters {t['train_iters']}"
            )
    for shots, steps in (config.get("eval", {}).get("fewshot_steps") or {}).items():
        if int(shots) not in config["eval"].get("num_fewshot", []):
            problems.append(
                f"eval.fewshot_steps.{shots}: {shots} is not in eval.num_fewshot "
                f"{config['eval'].get('num_fewshot')}"
            )
        for s in steps:
            if s > t["train_iters"]:
                problems.append(
                    f"eval.fewshot_steps.{shots}: step {s} is beyond training.train_iters "
                    f"{t['train_iters']}"
                )
    iv = config.get("intervention") or {}
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
            continue
    if iv.get("runs") and iv["baseline"] == "main" and not problems:
        ck = t["checkpoints"]
        scheduled = set(
            checkpoint_schedule(t["train_iters"], ck["every"], ck["log_spaced"], tuple(ck["extra"]))
        )
        for r in intervention_runs(config):
            missing = sorted(set(r.window) - scheduled)
            if missing:
                problems.append(
                    f"intervention.baseline: 'main' needs the suite's checkpoints at the window "
                    f"steps of {r.size} at {r.fraction}, but {missing[:5]} are not scheduled; "
                    "use baseline: control or a checkpoint_every that matches the schedule"
                )
    data = config["data"]
    if data["source"] == "pile_jsonl" and not data["pile"]["urls"]:
        problems.append("data.pile.urls: source 'pile_jsonl' needs at least one URL or path")
    if data["source"] in RELEASED_SOURCES:
        from workflow.data.releases import release_for

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
        embedded = {"lambada_cloze", "piqa_style", "sciq_style", "winogrande_style"}
        if embedded & set(config.get("eval", {}).get("tasks", [])):
            problems.append(
                f"eval.tasks: the embedded tasks are built from the held-out documents of a "
                f"text source; source {data['source']!r} has none (use lm-eval's own tasks)"
            )
    choice = {"piqa_style", "sciq_style", "winogrande_style"}
    if choice & set(config.get("eval", {}).get("tasks", [])) and data["source"] != "generated":
        problems.append(
            "eval.tasks: piqa_style, sciq_style and winogrande_style need the generated "
            "corpus (its domains and cloze targets)"
        )
    from workflow.studies.memorization.scores import check_config as check_memorization

    problems += check_memorization(config)
    if problems:
        raise ConfigError(f"invalid {source}:\n" + "\n".join(f"  {p}" for p in problems))


# Case studies read the suite's own checkpoints and data: a derived suite (other steps, shorter
# rows, other models) drops them rather than carry settings that no longer fit.
CASE_STUDIES = ("intervention", "memorization", "term_frequency")


def without_case_studies(raw: Mapping[str, Any]) -> dict:
    """`raw` without the case-study sections (tests and benchmarks that reshape a suite)."""
    return {k: v for k, v in raw.items() if k not in CASE_STUDIES}


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a YAML config file, apply nested overrides, and validate it."""
    path = Path(path)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:  # one line: file:line:column and what the parser expected
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if overrides:
        raw = deep_update(raw, overrides)
    return validate_config(raw, source=str(path))


def deep_update(base: Mapping, update: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------- schedule


def checkpoint_schedule(
    train_iters: int, every: int, log_spaced: bool = True, extra: tuple[int, ...] = ()
) -> list[int]:
    """Steps at which checkpoints are saved.

    Pythia: [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000)), i.e. step 0,
    the powers of two below the linear interval, then every `every` steps; the last step is
    always included.
    """
    steps = {0, train_iters}  # step 0 (the initialisation) is where the first segment starts
    if log_spaced:
        p = 1
        while p < every and p <= train_iters:
            steps.add(p)
            p *= 2
    steps.update(range(every, train_iters + 1, every))
    steps.update(s for s in extra if 0 <= s <= train_iters)
    return sorted(steps)


@dataclass(frozen=True)
class Segment:
    """One training job: resumes from checkpoint `start` and saves `steps` (all in (start, end])."""

    start: int
    end: int
    steps: tuple[int, ...]


def training_segments(
    schedule: list[int], segment_steps: int, boundaries: tuple[int, ...] = ()
) -> list[Segment]:
    """Cut the schedule into jobs of about `segment_steps` steps.

    Step 0 (the initialisation) is its own segment with start -1. A segment ends on the first
    scheduled step at least `segment_steps` after its start, or earlier on one of `boundaries`
    (steps whose checkpoint must hold the optimizer state, as an intervention's start; they are
    saved even when not scheduled), so boundaries are always checkpoints and every scheduled
    step belongs to exactly one segment.
    """
    segments = []
    rest = sorted({s for s in (*schedule, *boundaries) if s > 0})
    if schedule and schedule[0] == 0:
        segments.append(Segment(-1, 0, (0,)))
        start = 0
    else:
        raise ConfigError("checkpoint schedule must start at step 0 (the initialisation)")
    while rest:
        # end on the first scheduled step at least segment_steps after start (or the last one)
        end = next((s for s in rest if s >= start + segment_steps), rest[-1])
        end = min([end, *(b for b in boundaries if start < b < end)])
        segments.append(Segment(start, end, tuple(s for s in rest if s <= end)))
        rest = [s for s in rest if s > end]
        start = end
    return segments


# --------------------------------------------------------------------------- intervention


@dataclass(frozen=True)
class InterventionRun:
    """One gender-bias intervention (paper §3.1): `size` of `variant` continues from its step
    `start` checkpoint (weights and optimizer state) to `end` with pronouns swapped, saving
    `window` (the steps after the start, every `checkpoint_every`, and the end)."""

    size: str
    variant: str
    fraction: float
    start: int
    end: int
    window: tuple[int, ...]

    @property
    def name(self) -> str:
        """`intervention7` for 7% (the label of the run's directories and rules)."""
        return f"intervention{round(self.fraction * 100):g}"


def intervention_start(train_iters: int, fraction: float, round_to: int = 1) -> int:
    """(1 - fraction) x train_iters rounded to a multiple of `round_to` (0.07 of Pythia's
    143000 steps at 1000: 133000)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"intervention fraction {fraction} is outside (0, 1)")
    start = round((1.0 - fraction) * train_iters / round_to) * round_to
    if not 0 < start < train_iters:
        raise ConfigError(
            f"intervention fraction {fraction} of {train_iters} steps rounded to a multiple of "
            f"{round_to} starts at step {start}: outside (0, {train_iters})"
        )
    return start


def intervention_runs(config: Mapping[str, Any]) -> list[InterventionRun]:
    iv, t = config.get("intervention") or {}, config["training"]
    total = t["train_iters"]
    runs = []
    for r in iv.get("runs", []):
        start = intervention_start(total, r["fraction"], iv["round_start_to"])
        every = iv["checkpoint_every"]
        window = sorted({*range(start + every, total, every), total})
        runs.append(
            InterventionRun(r["size"], iv["variant"], r["fraction"], start, total, tuple(window))
        )
    return runs


# --------------------------------------------------------------------------- typed views


@dataclass(frozen=True)
class ModelSpec:
    name: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    lr: float
    min_lr: float
    init: str
    precision: str
    micro_batch_size: int
    gradient_accumulation_steps: int
    gpus: int
    nodes: int
    model_parallel: int
    segment_steps: int

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def non_embedding_params(self) -> int:
        d = self.hidden_size
        return self.num_layers * (12 * d * d + 13 * d) + 2 * d

    def total_params(self, padded_vocab: int) -> int:
        return self.non_embedding_params() + 2 * padded_vocab * self.hidden_size


@dataclass(frozen=True)
class TrainingSpec:
    seq_length: int
    global_batch_size: int
    train_iters: int
    lr_decay_iters: int
    warmup_iters: float
    min_lr_ratio: float
    adam_betas: tuple[float, float]
    adam_eps: float
    weight_decay: float
    gradient_clipping: float
    zero_stage: int
    seed: int
    rotary_pct: float
    rotary_emb_base: float
    make_vocab_size_divisible_by: int
    attention: str
    threads: int
    schedule: tuple[int, ...]
    peak_tflops: float | None = None
    tensorboard: bool = False
    wandb_project: str | None = None

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_length

    def num_samples(self, margin: float) -> int:
        """Samples the data stage must provide (NeoX v1.0 adds a 0.5% margin)."""
        return math.ceil(self.train_iters * self.global_batch_size * (1 + margin))


@dataclass(frozen=True)
class SuiteConfig:
    run: str
    results_dir: str
    variants: tuple[str, ...]
    training: TrainingSpec
    models: dict[str, ModelSpec] = field(hash=False)
    raw: dict = field(hash=False, repr=False, compare=False)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SuiteConfig:
        cfg = dict(config)
        if "training" in cfg and "checkpoints" not in cfg["training"]:
            cfg = validate_config(cfg)
        t = cfg["training"]
        decay = t["lr_decay_iters"] or t["train_iters"]
        ck = t["checkpoints"]
        schedule = checkpoint_schedule(
            t["train_iters"], ck["every"], ck["log_spaced"], tuple(ck["extra"])
        )
        training = TrainingSpec(
            seq_length=t["seq_length"],
            global_batch_size=t["global_batch_size"],
            train_iters=t["train_iters"],
            lr_decay_iters=decay,
            warmup_iters=t["warmup"] * decay,
            min_lr_ratio=t["min_lr_ratio"],
            adam_betas=tuple(t["adam_betas"]),
            adam_eps=t["adam_eps"],
            weight_decay=t["weight_decay"],
            gradient_clipping=t["gradient_clipping"],
            zero_stage=t["zero_stage"],
            seed=t["seed"],
            rotary_pct=t["rotary_pct"],
            rotary_emb_base=t["rotary_emb_base"],
            make_vocab_size_divisible_by=t["make_vocab_size_divisible_by"],
            attention=t["attention"],
            threads=t["threads"],
            schedule=tuple(schedule),
            peak_tflops=t["peak_tflops"],
            tensorboard=t["tensorboard"],
            wandb_project=t["wandb_project"],
        )
        models = {}
        selected = cfg.get("sizes") or list(cfg["models"])
        for name, m in cfg["models"].items():
            if name not in selected:
                continue
            dp = max(1, m["gpus"] * m["nodes"]) // m["model_parallel"]
            dp = max(dp, 1)
            micro = m["micro_batch_size"] or max(1, t["global_batch_size"] // dp)
            gas = max(1, t["global_batch_size"] // (micro * dp))
            models[name] = ModelSpec(
                name=name,
                num_layers=m["num_layers"],
                hidden_size=m["hidden_size"],
                num_attention_heads=m["num_attention_heads"],
                lr=m["lr"],
                min_lr=m["min_lr"] if m["min_lr"] is not None else t["min_lr_ratio"] * m["lr"],
                init=m["init"],
                precision=m["precision"] or t["precision"],
                micro_batch_size=micro,
                gradient_accumulation_steps=gas,
                gpus=m["gpus"],
                nodes=m["nodes"],
                model_parallel=m["model_parallel"],
                segment_steps=m["segment_steps"],
            )
        return cls(
            run=cfg["run"],
            results_dir=cfg["results_dir"],
            variants=tuple(cfg["variants"]),
            training=training,
            models=models,
            raw=cfg,
        )

    def segments(self, size: str) -> list[Segment]:
        """Training jobs of `size`: the suite's schedule, plus the start of each intervention
        on this size as a segment boundary (its checkpoint keeps the optimizer state)."""
        starts = tuple(r.start for r in self.interventions if r.size == size)
        return training_segments(
            list(self.training.schedule), self.models[size].segment_steps, starts
        )

    @property
    def interventions(self) -> list[InterventionRun]:
        return [r for r in intervention_runs(self.raw) if r.size in self.models]

    def eval_steps(self, shots: int | None = None) -> list[int]:
        """The checkpoints evaluated (with `shots` examples: eval.fewshot_steps may give that
        shot count its own grid, as the paper's five-shot runs at 3000, 13000, ..., 143000)."""
        ev = self.raw.get("eval", {})
        own = (ev.get("fewshot_steps") or {}).get(str(shots)) if shots is not None else None
        steps = own or ev.get("steps") or list(self.training.schedule)
        return sorted(set(steps))

    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run


def padded_vocab_size(vocab_size: int, divisible_by: int, model_parallel: int = 1) -> int:
    """Megatron pads the embedding to a multiple of divisible_by * model_parallel."""
    multiple = divisible_by * model_parallel
    return int(math.ceil(vocab_size / multiple) * multiple)
