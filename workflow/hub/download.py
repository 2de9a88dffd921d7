"""A published checkpoint fetched back from either backend, to check against its receipt."""

from __future__ import annotations

import os
from pathlib import Path

from workflow.hub.huggingface import download_huggingface
from workflow.hub.layout import unknown_backend
from workflow.hub.local_git import download_local_git, require_local_root


def download_checkpoint(
    *,
    repo_id: str,
    revision: str,
    backend: str,
    out_dir: str | os.PathLike,
    local_root: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> Path:
    """Materialize `repo_id` at `revision` (a branch such as ``step1000``) into `out_dir`.

    Atomic: `out_dir` appears complete or not at all. Check it with `upload.verify_receipt`.
    """
    out_dir = Path(out_dir)
    if backend == "local_git":
        download_local_git(require_local_root(local_root), repo_id, revision, out_dir)
    elif backend == "huggingface":
        download_huggingface(repo_id, revision, out_dir, endpoint=endpoint, token=token)
    else:
        raise unknown_backend(backend)
    return out_dir
