"""Pythia's Hub layout: which repository a model goes to, and which files a checkpoint publishes.

Pythia's layout (reference/pythia.md §2): one model repo per size and variant,
``{org}/pythia-{size}[-deduped]``, one git branch ``step{N}`` per checkpoint, and ``main`` equal to
the final step. Two backends write that layout (`upload.publish_checkpoint`):

* ``local_git`` (`local_git.py`): bare git repositories under a local folder;
* ``huggingface`` (`huggingface.py`): the real Hub API via ``huggingface_hub.HfApi`` (or any
  server speaking it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from workflow.core.checkpoint import CHECKPOINT_JSON, DEEPSPEED_DIR
from workflow.core.io import read_json

BACKENDS = ("local_git", "huggingface")
VARIANT_SUFFIX = {"standard": "", "deduped": "-deduped"}
# deepspeed/: optimizer/resume state stays out of the published checkpoint; .git/ and .cache/ are
# skipped by upload_folder too, so receipts list exactly what either backend publishes.
EXCLUDED_DIRS = (DEEPSPEED_DIR, ".git", ".cache")
# Snakemake's marker in a directory output: not part of the checkpoint, never published
EXCLUDED_FILES = (".snakemake_timestamp",)
# Written by the upload itself (model_card.py), never taken from the checkpoint directory
MODEL_CARD = "README.md"


class HubError(RuntimeError):
    """A publishing/download problem the user can act on; the message names repo and revision."""


def unknown_backend(backend: str) -> ValueError:
    return ValueError(f"unknown hub backend {backend!r}: expected one of {list(BACKENDS)}")


def repo_id_for(org: str, template: str, size: str, variant: str) -> str:
    """``{org}/{template}`` with ``{size}`` and ``{suffix}`` ('' or '-deduped') filled in."""
    if variant not in VARIANT_SUFFIX:
        raise ValueError(f"unknown variant {variant!r}: expected one of {sorted(VARIANT_SUFFIX)}")
    try:
        name = template.format(size=size, suffix=VARIANT_SUFFIX[variant])
    except (KeyError, IndexError) as e:
        raise ValueError(
            f"hub.repo_template {template!r} may only use {{size}} and {{suffix}} ({e})"
        ) from None
    if not org or "/" in org or not name or "/" in name:
        raise ValueError(
            f"invalid repo id {org!r}/{name!r}: org and name must be non-empty, no '/'"
        )
    return f"{org}/{name}"


def checkpoint_files(ckpt_dir: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the files to publish (sorted), i.e. everything but ``deepspeed/``."""
    root = Path(ckpt_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint directory {root} does not exist")
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in EXCLUDED_DIRS or rel.name in EXCLUDED_FILES or not path.is_file():
            continue
        files.append(rel.as_posix())
    if not files:
        raise HubError(f"checkpoint directory {root} has no files to publish")
    return sorted(files)


def checkpoint_step(ckpt_dir: Path, branch: str) -> int | None:
    """The step of a checkpoint: its training record's, else the N of a ``step{N}`` branch."""
    meta = ckpt_dir / CHECKPOINT_JSON
    if meta.is_file():
        step = read_json(meta).get("step")
        if step is not None:
            return int(step)
    m = re.fullmatch(r"step(\d+)", branch)
    return int(m.group(1)) if m else None
