"""What a model's weights are a function of: its config hash.

Kept apart from workflow/train/ (which imports torch) so that the rules can name it as a
parameter of every training job: a changed hyperparameter or seed then reruns the training jobs
and everything downstream (Snakemake's params trigger) instead of leaving old checkpoints under
the new config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from workflow.core.config import ModelSpec, TrainingSpec

# Fields that do not change the trained weights, so changing them must not block a resume:
# how the job is laid out on hardware, how often it checkpoints, and the attention kernel.
# (Micro-batching and thread count can change float summation order; they are still excluded so
# that a model can move to other hardware, at the cost of bit-exactness across the move.)
_OPERATIONAL_MODEL_FIELDS = (
    "name",
    "micro_batch_size",
    "gradient_accumulation_steps",
    "gpus",
    "nodes",
    "segment_steps",
    "hours_per_segment",
)
_OPERATIONAL_TRAINING_FIELDS = (
    "train_iters",
    "attention",
    "threads",
    "schedule",
    "peak_tflops",
    "tensorboard",
    "wandb_project",
    # memory savers and communication: the same maths (activation checkpointing recomputes the
    # same values; the chunked loss sums the same terms in another order, within 1e-6)
    "activation_checkpointing",
    "loss_chunk_tokens",
    "zero_overlap_comm",
    "zero_bucket_size",
)
_OPERATIONAL_MODEL_FIELDS += ("zero_bucket_size",)
# Fields added after suites were trained: left out of the hash at their old behaviour, so that
# existing checkpoints keep their hash (and Snakemake does not retrain them).
_ADDED_AT_DEFAULT = {"activation": "gelu", "precision_by_variant": ()}


def config_hash(spec: ModelSpec, training: TrainingSpec) -> str:
    """sha256 of everything in the model and training specs that determines the weights."""
    m = {k: v for k, v in dataclasses.asdict(spec).items() if k not in _OPERATIONAL_MODEL_FIELDS}
    t = {
        k: v
        for k, v in dataclasses.asdict(training).items()
        if k not in _OPERATIONAL_TRAINING_FIELDS
    }
    m = {k: v for k, v in m.items() if _ADDED_AT_DEFAULT.get(k, ...) != v}
    t = {k: v for k, v in t.items() if _ADDED_AT_DEFAULT.get(k, ...) != v}
    blob = json.dumps({"model": m, "training": t}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
