"""The checkpoint format: what a `step{N}/` directory holds and the names every stage reads.

A checkpoint is an HF-loadable model (`config.json`, `model.safetensors`, tokenizer files) plus,
for resume, the DeepSpeed state under `deepspeed/` and the training record `pythia_checkpoint.json`
(step, tokens seen, data fingerprint, config hash, sha256 of every file). A checkpoint fetched from
the Hub instead carries its download receipt, `published_checkpoint.json`.
"""

from __future__ import annotations

from pathlib import Path

from workflow.core.io import read_json

CHECKPOINT_JSON = "pythia_checkpoint.json"
PUBLISHED_JSON = "published_checkpoint.json"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "state"


def read_record(ckpt_dir: str | Path) -> dict:
    """The training record of a checkpoint; {} where there is none (a published copy)."""
    path = Path(ckpt_dir) / CHECKPOINT_JSON
    return read_json(path) if path.is_file() else {}


def provenance_path(ckpt_dir: str | Path) -> Path:
    """What a checkpoint is: our training record, else the download receipt of a published one."""
    record = Path(ckpt_dir) / CHECKPOINT_JSON
    return record if record.is_file() else Path(ckpt_dir) / PUBLISHED_JSON


def published_files(record: dict) -> dict[str, str]:
    """The digests of the files a published copy keeps: all but the training state (deepspeed/)."""
    files = record.get("files") or {}
    return {k: v for k, v in files.items() if k.split("/")[0] != DEEPSPEED_DIR}
