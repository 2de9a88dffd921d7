"""Publishing a checkpoint (rule `upload`) in Pythia's Hub layout, with a checksummed receipt.

Every upload returns a receipt (repo, branch, commit, sha256 per file). `verify_receipt` checks a
downloaded checkpoint against it, because published branches have served the wrong weights before
(EleutherAI/pythia#205, #206).
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow.core.checkpoint import CHECKPOINT_JSON
from workflow.core.io import read_json, sha256_file, verify_files
from workflow.hub.huggingface import publish_huggingface, refuse_offline, require_token
from workflow.hub.layout import (
    EXCLUDED_DIRS,
    MODEL_CARD,
    HubError,
    checkpoint_files,
    checkpoint_step,
    unknown_backend,
)
from workflow.hub.local_git import publish_local_git, require_local_root
from workflow.hub.model_card import model_card


class ReceiptMismatch(HubError):
    """A checkpoint's files do not match its upload receipt."""


def publish_checkpoint(
    ckpt_dir: str | os.PathLike,
    *,
    repo_id: str,
    branch: str,
    backend: str,
    local_root: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    final: bool = False,
    force: bool = False,
    project_url: str | None = None,
) -> dict[str, Any]:
    """Upload every file of `ckpt_dir` except ``deepspeed/`` to `repo_id` at `branch`.

    `final`: this is the last step of training, which Pythia also serves as `main` (the
    local_git backend moves `main` to the highest step by itself).

    Returns the receipt: {backend, repo_id, branch, commit, files: {name: sha256}, bytes,
    url_or_path, step, uploaded_at} (plus main_commit when `final` on the Hugging Face Hub).
    """
    ckpt_dir = Path(ckpt_dir)
    files = [f for f in checkpoint_files(ckpt_dir) if f != MODEL_CARD]
    _verify_recorded_digests(ckpt_dir)
    step = checkpoint_step(ckpt_dir, branch)
    card = model_card(ckpt_dir, repo_id, branch, step, project_url).encode()
    extra: dict[str, Any] = {}
    if backend == "local_git":
        root = require_local_root(local_root)
        commit, where = publish_local_git(
            ckpt_dir, files, root, repo_id, branch, step, card=card, force=force
        )
    elif backend == "huggingface":
        refuse_offline(repo_id, branch)
        kw = dict(endpoint=endpoint, token=require_token(token, endpoint), private=private)
        commit, where = publish_huggingface(
            ckpt_dir, files, repo_id, branch, step, card=card, force=force, **kw
        )
        if final and branch != "main":  # main is Pythia's alias of the final step: overwritten
            extra["main_commit"], _ = publish_huggingface(
                ckpt_dir, files, repo_id, "main", step, card=card, force=True, **kw
            )
    else:
        raise unknown_backend(backend)
    hashes = {name: sha256_file(ckpt_dir / name) for name in files}
    hashes[MODEL_CARD] = hashlib.sha256(card).hexdigest()
    return {
        "backend": backend,
        "repo_id": repo_id,
        "branch": branch,
        "commit": commit,
        "files": dict(sorted(hashes.items())),
        "bytes": sum((ckpt_dir / name).stat().st_size for name in files) + len(card),
        "url_or_path": where,
        "step": step,
        "uploaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def _verify_recorded_digests(ckpt_dir: Path) -> None:
    """Never publish damaged weights: check the digests its training recorded (ArtifactError)."""
    meta_path = ckpt_dir / CHECKPOINT_JSON
    if meta_path.is_file():
        meta = read_json(meta_path)
        files_ok = {
            k: v
            for k, v in (meta.get("files") or {}).items()
            if k.split("/")[0] not in EXCLUDED_DIRS
        }
        verify_files(ckpt_dir, files_ok, record=meta_path, rule=meta.get("producer"))


def verify_receipt(
    receipt: dict[str, Any], directory: str | os.PathLike, *, allow_extra: bool = True
) -> None:
    """Raise ReceiptMismatch naming every file of `directory` that differs from `receipt`."""
    directory = Path(directory)
    where = f"{receipt.get('repo_id')}@{receipt.get('branch')}"
    problems = []
    for name, expected in sorted(receipt["files"].items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{name}: sha256 {actual} != receipt {expected}")
    if not allow_extra:
        extra = set(checkpoint_files(directory)) - set(receipt["files"])
        problems += [f"{name}: not in the receipt" for name in sorted(extra)]
    if problems:
        raise ReceiptMismatch(
            f"checkpoint {directory} does not match the upload receipt of {where}:\n  "
            + "\n  ".join(problems)
        )
