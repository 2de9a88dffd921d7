"""Published checkpoints as a source (config `checkpoints.source: published`, rule
`fetch_published`).

Most users never retrain: they evaluate EleutherAI's released models, branch ``step{N}`` of
``EleutherAI/pythia-{size}[-deduped]``. `fetch_published_checkpoint` downloads one such
revision into the directory where training would have put it, so eval, case studies and
figures run unchanged. Every file is checked against the hash the Hub lists for it (LFS
sha256, or the git blob id of a small file), and known defects of the released repos are
detected rather than silently used:

* branches that serve the final model's weights instead of their own step (pythia#205, #206):
  the weights of ``step{N}`` have the same hash as ``main``'s although N is not the final step;
* missing branches (pythia#94, #107, #141): a clear error naming the repo and the step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from workflow.core.checkpoint import PUBLISHED_JSON
from workflow.core.io import atomic_path, git_blob_id, sha256_file, write_json
from workflow.hub.huggingface import listed_hash
from workflow.hub.layout import HubError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Files a checkpoint needs to load with transformers (weights are matched by suffix).
NEEDED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _weights(paths: list[str]) -> list[str]:
    names = [p for p in paths if "/" not in p and p.endswith(WEIGHT_SUFFIXES)]
    safetensors = [p for p in names if p.endswith(".safetensors")]
    return sorted(safetensors or names)  # one format is enough: safetensors when published


def fetch_published_checkpoint(
    repo_id: str,
    step: int,
    out_dir: str | os.PathLike,
    *,
    final_step: int | None,
    endpoint: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Download branch ``step{step}`` of `repo_id` into `out_dir` (atomically), verified.

    Returns (and writes to `out_dir/published_checkpoint.json`) a receipt: repo, revision,
    commit, and the listed hash of every file."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    commit, wanted, listed = _listed_files(api, repo_id, step, final_step)
    where = f"{repo_id}@step{step}"
    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True) as tmp:
        files = {}
        for name in wanted:
            files[name] = _download_verified(
                repo_id, commit, name, listed[name], Path(tmp), where, endpoint, token
            )
        shutil.rmtree(Path(tmp) / ".cache", ignore_errors=True)  # hf_hub_download metadata
        receipt = {
            "repo_id": repo_id,
            "revision": f"step{step}",
            "commit": commit,
            "step": step,
            "endpoint": api.endpoint,
            "files": files,
        }
        write_json(Path(tmp) / PUBLISHED_JSON, receipt)
    return receipt


def _listed_files(
    api, repo_id: str, step: int, final_step: int | None
) -> tuple[str, list[str], dict[str, tuple[str, str]]]:
    """(commit of branch step{step}, the files to fetch, {file: listed (kind, hash)}); refuses a
    missing branch or repo, one without weights, and one serving the final step's weights."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    revision = f"step{step}"
    where = f"{repo_id}@{revision}"
    try:
        info = api.model_info(repo_id, revision=revision)
        paths = [s.rfilename for s in info.siblings or []]
        wanted = [*(p for p in NEEDED if p in paths), *_weights(paths)]
        if not _weights(paths) or "config.json" not in paths:
            raise HubError(f"{where} has no model weights and config.json (files: {paths})")
        listed = {
            e.path: listed_hash(e) for e in api.get_paths_info(repo_id, wanted, revision=info.sha)
        }
        if final_step is not None and step != final_step:
            weights = _weights(paths)
            main = {
                e.path: listed_hash(e)
                for e in api.get_paths_info(repo_id, weights, revision="main")
            }
            if all(main.get(w) == listed[w] for w in weights):
                raise HubError(
                    f"{where} serves the same weights as main (the final step {final_step}): a "
                    "known defect of released branches (EleutherAI/pythia#205, #206). Refusing "
                    f"to evaluate it as step {step}; report it upstream or drop the step"
                )
    except RevisionNotFoundError:
        raise HubError(
            f"{repo_id} has no branch {revision}: the step is not published (released repos "
            "have had missing branches, pythia#94, #107, #141)"
        ) from None
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such model repo on {api.endpoint}") from None
    return info.sha, wanted, listed


def _download_verified(
    repo_id: str,
    commit: str,
    name: str,
    expected: tuple[str, str],
    tmp: Path,
    where: str,
    endpoint: str | None,
    token: str | None,
) -> dict[str, str]:
    """One file of `commit` (the commit listed, even if the branch moves) into `tmp`, checked
    against the hash the Hub lists for it; {kind: hash}."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        local = Path(
            hf_hub_download(
                repo_id, name, revision=commit, local_dir=tmp, endpoint=endpoint, token=token
            )
        )
    except EntryNotFoundError:
        raise HubError(f"{where}: {name} disappeared during the download") from None
    kind, want = expected
    got = sha256_file(local) if kind == "sha256" else git_blob_id(local)
    if got != want:
        raise HubError(
            f"{where}: {name} {kind} {got} differs from the {want} the Hub lists; "
            "nothing was kept, run again to download it afresh"
        )
    return {kind: got}
