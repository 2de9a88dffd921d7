"""The ``huggingface`` hub backend: Pythia's layout on the Hugging Face Hub (or any server speaking
its API), through ``huggingface_hub.HfApi``.

A branch already published with the same bytes is skipped, one with other bytes is refused unless
forced; every call is retried on the Hub's rate limits and transient errors (429/5xx). The token
never appears in an error message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from workflow.core.io import atomic_path, git_blob_id, sha256_file
from workflow.hub.layout import MODEL_CARD, HubError

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 500, 502, 503, 504)


def refuse_offline(repo_id: str, branch: str) -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise HubError(
            f"cannot publish {repo_id}@{branch}: HF_HUB_OFFLINE is set for this process "
            "(the upload rule must run without it)"
        )


def require_token(token: str | None, endpoint: str | None) -> str:
    """The token to write with (argument, HF_TOKEN or the saved login), checked with the Hub
    before any upload work. Error messages never contain it."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = token or get_token()
    if not token:
        raise HubError(
            "no Hugging Face token: set HF_TOKEN or log in (`hf auth login`) before uploading"
        )
    try:
        retry(lambda: HfApi(endpoint=endpoint, token=token).whoami(), "whoami")
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        raise HubError(
            f"the Hugging Face token was rejected by {endpoint or 'the Hub'} (HTTP {status}): "
            "check HF_TOKEN or log in again"
        ) from None
    return token


def retry(fn, what: str, attempts: int = 6, base: float = 1.0):
    """Call `fn`, retrying on 429/5xx with exponential backoff (honouring Retry-After): the Hub
    rate-limits commits per repo and has transient outages."""
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(attempts):
        try:
            return fn()
        except HfHubHTTPError as e:
            response = getattr(e, "response", None)
            status = getattr(response, "status_code", None)
            if status not in RETRY_STATUS or attempt == attempts - 1:
                raise
            after = response.headers.get("Retry-After") if response is not None else None
            delay = float(after) if after and after.isdigit() else base * 2**attempt
            log.warning("%s: HTTP %s, retrying in %.1f s", what, status, delay)
            time.sleep(min(delay, 60.0))
    raise AssertionError("unreachable")


def listed_hash(entry) -> tuple[str, str]:
    """(kind, hash) the Hub lists for a file: ("sha256", LFS sha256), else ("git-blob", blob id)."""
    if getattr(entry, "lfs", None) is not None:
        return "sha256", entry.lfs.sha256
    return "git-blob", entry.blob_id


def _local_hash(kind: str, path: Path | None, card: bytes) -> str:
    """The hash of `kind` of a checkpoint file, or of the model card when `path` is None."""
    if kind == "sha256":
        return sha256_file(path) if path else hashlib.sha256(card).hexdigest()
    if path is None:
        return hashlib.sha1(f"blob {len(card)}\0".encode() + card).hexdigest()
    return git_blob_id(path)


def _remote_differences(api, repo_id: str, branch: str, ckpt_dir: Path, files, card) -> list:
    """Files of our checkpoint whose hash differs from (or is missing on) the Hub branch."""
    remote = {
        e.path: e
        for e in retry(
            lambda: api.get_paths_info(repo_id, [*files, MODEL_CARD], revision=branch),
            f"paths-info {repo_id}@{branch}",
        )
    }
    different = []
    for name in [*files, MODEL_CARD]:
        entry = remote.get(name)
        if entry is None:
            different.append(name)
            continue
        kind, expected = listed_hash(entry)
        path = ckpt_dir / name if name != MODEL_CARD else None
        if _local_hash(kind, path, card) != expected:
            different.append(name)
    return different


def publish_huggingface(
    ckpt_dir: Path,
    files: list[str],
    repo_id: str,
    branch: str,
    step: int | None,
    *,
    card: bytes,
    force: bool,
    endpoint: str | None,
    token: str | None,
    private: bool,
) -> tuple[str, str]:
    """Commit `files` of `ckpt_dir` and the model card to `branch` of `repo_id` (created if
    need be); return (commit, URL of the branch)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    refuse_offline(repo_id, branch)
    api = HfApi(endpoint=endpoint, token=token)
    where = f"{api.endpoint}/{repo_id}/tree/{branch}"
    try:
        retry(
            lambda: api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private),
            f"create {repo_id}",
        )
        refs = retry(lambda: api.list_repo_refs(repo_id), f"refs of {repo_id}")
        heads = {b.name: b.target_commit for b in refs.branches}
        if branch in heads:
            different = _remote_differences(api, repo_id, branch, ckpt_dir, files, card)
            if not different:
                return heads[branch], where  # already published with these bytes: skip
            if not force:
                raise HubError(
                    f"{repo_id}@{branch} is already published with other content "
                    f"({', '.join(different)}); refusing to replace a published checkpoint "
                    "(set hub.force: true to overwrite it)"
                )
        else:
            retry(
                lambda: api.create_branch(repo_id, branch=branch, exist_ok=True),
                f"create branch {repo_id}@{branch}",
            )
        return _commit(api, ckpt_dir, files, repo_id, branch, step, card), where
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(
                f"{repo_id}: the token cannot write this repo (HTTP {status}); check the "
                "organisation and the token's permissions"
            ) from None
        raise HubError(f"{repo_id}@{branch}: upload failed (HTTP {status})") from None


def _commit(api, ckpt_dir: Path, files, repo_id: str, branch: str, step, card: bytes) -> str:
    """One commit of the files and the model card onto `branch`; its id."""
    from huggingface_hub import CommitOperationAdd

    operations = [
        CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(ckpt_dir / f)) for f in files
    ]
    operations.append(CommitOperationAdd(path_in_repo=MODEL_CARD, path_or_fileobj=card))
    info = retry(
        lambda: api.create_commit(
            repo_id,
            operations=operations,
            revision=branch,
            commit_message=f"Upload {branch}" + (f" (step {step})" if step is not None else ""),
        ),
        f"commit {repo_id}@{branch}",
    )
    return info.oid


def download_huggingface(
    repo_id: str,
    revision: str,
    out_dir: str | os.PathLike,
    *,
    endpoint: str | None = None,
    token: str | None = None,
) -> None:
    """`repo_id` at `revision` into `out_dir`, atomically (``snapshot_download``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    with atomic_path(out_dir, directory=True) as tmp:
        try:
            snapshot_download(
                repo_id, revision=revision, local_dir=tmp, endpoint=endpoint, token=token
            )
        except RevisionNotFoundError:
            raise HubError(f"{repo_id} has no revision {revision!r}") from None
        except RepositoryNotFoundError:
            raise HubError(f"hub repo {repo_id} not found (endpoint {endpoint})") from None
        shutil.rmtree(Path(tmp) / ".cache", ignore_errors=True)  # snapshot_download metadata
