"""One file of a released Pythia dataset from the HF Hub, verified (rule `download_release`)."""

from __future__ import annotations

import os
from pathlib import Path

from workflow.core.io import git_blob_id, sha256_file
from workflow.core.releases import Release, ReleaseError


def download_release_file(
    release: Release,
    variant: str,
    filename: str,
    out_dir: str | os.PathLike,
    *,
    endpoint: str | None = None,
) -> dict:
    """Download one file of a release to `out_dir/filename` and verify it.

    `hf_hub_download(local_dir=...)` keeps an interrupted download under `out_dir/.cache` and
    resumes it with an HTTP Range request on the next call. A file whose hash differs from the
    published one is deleted (resuming from it could never succeed) and raises ReleaseError.
    """
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    repo = release.repo(variant)
    where = f"{repo}@{release.revision}:{filename}"
    try:
        if filename in release.sha256:
            kind, expected = "sha256 (published list)", release.sha256[filename]
        else:
            info = HfApi(endpoint=endpoint).get_paths_info(
                repo, [filename], repo_type="dataset", revision=release.revision
            )
            if not info:
                raise ReleaseError(f"{where}: no such file on the Hub")
            if info[0].lfs is not None:
                kind, expected = "sha256 (Hub LFS)", info[0].lfs.sha256
            else:
                kind, expected = "git blob id (Hub)", info[0].blob_id
        local = Path(
            hf_hub_download(
                repo,
                filename,
                repo_type="dataset",
                revision=release.revision,
                local_dir=out_dir,
                endpoint=endpoint,
            )
        )
    except (EntryNotFoundError, RepositoryNotFoundError) as e:
        raise ReleaseError(f"{where}: not found on the Hub ({type(e).__name__})") from None
    got = sha256_file(local) if kind.startswith("sha256") else git_blob_id(local)
    if got != expected.lower():
        local.unlink(missing_ok=True)
        raise ReleaseError(
            f"{where}: {kind} mismatch: expected {expected}, got {got}; the file was deleted, "
            "run again to download it afresh"
        )
    return {
        "repo": repo,
        "revision": release.revision,
        "file": filename,
        "path": str(local),
        "bytes": local.stat().st_size,
        "verified": kind,
        "hash": got,
    }
