"""Suite configuration: YAML -> validated (JSON schema, defaults filled) -> frozen dataclasses.

Config flows one way: the Snakefile (or a test) validates the raw mapping once with
`validate_config`, and every stage builds the typed view it needs with `SuiteConfig.from_dict`.
The schema and its defaults are `workflow.core.validation`, the cross-field rules
`workflow.core.semantics`, the steps (checkpoint schedule, training segments, intervention
windows) `workflow.core.schedule`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workflow.core.compute import (
    config_vocab_size,
    gpu_hours,
    segment_steps_for_hours,
    training_flops,
)
from workflow.core.schedule import (
    InterventionRun,
    Segment,
    checkpoint_schedule,
    config_schedule,
    intervention_runs,
    intervention_start,
    training_segments,
)
from workflow.core.semantics import check_semantics
from workflow.core.validation import ConfigError, check_schema

# what callers import from here (the steps and the error live in their own modules)
__all__ = [
    "ConfigError",
    "InterventionRun",
    "ModelSpec",
    "Segment",
    "SuiteConfig",
    "TrainingSpec",
    "checkpoint_schedule",
    "deep_update",
    "intervention_runs",
    "intervention_start",
    "load_config",
    "padded_vocab_size",
    "training_segments",
    "validate_config",
    "without_case_studies",
]


def validate_config(raw: Mapping[str, Any], source: str = "config") -> dict:
    """Validate `raw` against the schema, fill defaults, and check cross-field rules.

    Returns a new dict; raises ConfigError naming every bad key path.
    """
    config = check_schema(raw, source)
    check_semantics(config, source)
    return config


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
    # a precision per variant where they differ (pythia-1b is bf16, pythia-1b-deduped fp16)
    precision_by_variant: tuple[tuple[str, str], ...] = ()
    zero_bucket_size: float | None = None

    def for_variant(self, variant: str) -> ModelSpec:
        """This model as `variant` trains it (its precision resolved)."""
        own = dict(self.precision_by_variant).get(variant)
        if own is None:
            return self
        return dataclasses.replace(self, precision=own, precision_by_variant=())

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
    activation: str = "gelu"
    activation_checkpointing: bool = False
    loss_chunk_tokens: int | None = None
    zero_overlap_comm: bool = False
    zero_bucket_size: float = 5e8

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
        schedule = config_schedule(cfg)
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
            activation=t["activation"],
            activation_checkpointing=t["activation_checkpointing"],
            loss_chunk_tokens=t["loss_chunk_tokens"],
            zero_overlap_comm=t["zero_overlap_comm"],
            zero_bucket_size=t["zero_bucket_size"],
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
                precision=_precision(m["precision"], t["precision"]),
                precision_by_variant=_precision_by_variant(m["precision"], t["precision"]),
                zero_bucket_size=m["zero_bucket_size"],
                micro_batch_size=micro,
                gradient_accumulation_steps=gas,
                gpus=m["gpus"],
                nodes=m["nodes"],
                model_parallel=m["model_parallel"],
                segment_steps=m["segment_steps"],
            )
        suite = cls(
            run=cfg["run"],
            results_dir=cfg["results_dir"],
            variants=tuple(cfg["variants"]),
            training=training,
            models=models,
            raw=cfg,
        )
        return suite._timed_segments(t.get("hours_per_segment"))

    def _timed_segments(self, hours: float | None) -> SuiteConfig:
        """This suite with the segment_steps of its GPU-trained models derived from
        training.hours_per_segment (the time model: 6·N·D at compute.mfu), if set."""
        if not hours:
            return self
        t = self.training
        for name, spec in self.models.items():
            if not spec.gpus:
                continue
            flops = training_flops(self.model_params(spec), t.tokens_per_step)
            step_hours = gpu_hours(flops, self.raw["compute"]) / (spec.gpus * spec.nodes)
            steps = segment_steps_for_hours(step_hours, t.train_iters, t.schedule, hours, name)
            self.models[name] = dataclasses.replace(spec, segment_steps=steps)
        return self

    def padded_vocab(self, spec: ModelSpec) -> int:
        """The embedding's rows: the tokenizer's vocabulary padded as Megatron pads it."""
        return padded_vocab_size(
            config_vocab_size(self.raw),
            self.training.make_vocab_size_divisible_by,
            spec.model_parallel,
        )

    def model_params(self, spec: ModelSpec) -> int:
        """Total parameters with the padded vocabulary (input and output embeddings)."""
        return spec.total_params(self.padded_vocab(spec))

    def segments(self, size: str) -> list[Segment]:
        """Training jobs of `size`: the suite's schedule, plus, for each intervention on this
        size, its start (saved with the optimizer state, which the intervention resumes from)
        and, where the baseline is the main run (`intervention.baseline: main`), the window
        steps the schedule lacks (saved for the baseline arm's evaluations)."""
        runs = [r for r in self.interventions if r.size == size]
        main = self.intervention_baseline == "main"
        return training_segments(
            list(self.training.schedule),
            self.models[size].segment_steps,
            boundaries=tuple(r.start for r in runs),
            extra=tuple(s for r in runs for s in r.window) if main else (),
        )

    @property
    def intervention_baseline(self) -> str:
        """intervention.baseline: "main" (the suite's own run) or "control" (a continuation)."""
        return (self.raw.get("intervention") or {}).get("baseline", "main")

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


def _precision(own: str | Mapping | None, default: str) -> str:
    """A model's precision: its own, the standard variant's where it names one per variant,
    else training.precision."""
    if isinstance(own, Mapping):
        return own.get("standard", default)
    return own or default


def _precision_by_variant(own: str | Mapping | None, default: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(own, Mapping):
        return ()
    return tuple(sorted((v, p) for v, p in own.items() if p != _precision(own, default)))


def padded_vocab_size(vocab_size: int, divisible_by: int, model_parallel: int = 1) -> int:
    """Megatron pads the embedding to a multiple of divisible_by * model_parallel."""
    multiple = divisible_by * model_parallel
    return int(math.ceil(vocab_size / multiple) * multiple)
