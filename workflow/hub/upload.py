"""Publish checkpoints in the Pythia Hub layout and fetch them back, with checksummed receipts.

Pythia's layout (reference/pythia.md §2): one model repo per size and variant,
``{org}/pythia-{size}[-deduped]``, one git branch ``step{N}`` per checkpoint, and ``main`` equal to
the final step. Two backends write that layout:

* ``local_git``: a bare git repository ``{local_root}/{repo_id}.git`` written with git plumbing only
  (``hash-object``, ``mktree``, ``commit-tree``, ``update-ref``), so jobs uploading different
  branches of one repo in parallel never share a work tree or an index. Commits are deterministic
  (fixed identity, date derived from the step): publishing identical files gives the same commit.
  ``main`` follows the highest step published so far. olah and the tests' minihub serve these
  repositories over the Hub's HTTP API unchanged.
* ``huggingface``: the real Hub API via ``huggingface_hub.HfApi`` (or any server speaking it).

Every upload returns a receipt (repo, branch, commit, sha256 per file). ``verify_receipt`` checks a
downloaded checkpoint against it, because published branches have served the wrong weights before
(EleutherAI/pythia#205, #206).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow.core.checkpoint import CHECKPOINT_JSON
from workflow.core.io import atomic_path, git_blob_id, read_json, sha256_file, verify_files

BACKENDS = ("local_git", "huggingface")
VARIANT_SUFFIX = {"standard": "", "deduped": "-deduped"}
# deepspeed/: optimizer/resume state stays out of the published checkpoint; .git/ and .cache/ are
# skipped by upload_folder too, so receipts list exactly what either backend publishes.
EXCLUDED_DIRS = ("deepspeed", ".git", ".cache")
# Snakemake's marker in a directory output: not part of the checkpoint, never published
EXCLUDED_FILES = (".snakemake_timestamp",)
MODEL_CARD = "README.md"
log = logging.getLogger(__name__)

# Deterministic commit identity. The date is EPOCH + step seconds: EPOCH is 2023-04-01 00:00 UTC
# (arXiv 2304.01373), so commit dates sort like steps and never depend on the wall clock.
GIT_NAME = "pythia-workflow"
GIT_EMAIL = "pythia-workflow@localhost"
EPOCH = 1680307200
_ZERO_OID = "0" * 40
_STEP_TRAILER = re.compile(r"^Pythia-Step: (\d+)$", re.MULTILINE)


class HubError(RuntimeError):
    """A publishing/download problem the user can act on; the message names repo and revision."""


class ReceiptMismatch(HubError):
    """A checkpoint's files do not match its upload receipt."""


# --------------------------------------------------------------------------------------- naming


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


def _checkpoint_step(ckpt_dir: Path, branch: str) -> int | None:
    meta = ckpt_dir / CHECKPOINT_JSON
    if meta.is_file():
        step = read_json(meta).get("step")
        if step is not None:
            return int(step)
    m = re.fullmatch(r"step(\d+)", branch)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------------ model card


def model_card(ckpt_dir: Path, repo_id: str, branch: str, step: int | None) -> str:
    """The README.md published with every checkpoint: architecture, data, training settings,
    fingerprints and how to load this step (deterministic: no dates)."""
    cfg = read_json(ckpt_dir / "config.json") if (ckpt_dir / "config.json").is_file() else {}
    meta = read_json(ckpt_dir / CHECKPOINT_JSON) if (ckpt_dir / CHECKPOINT_JSON).is_file() else {}
    rope = cfg.get("rope_parameters") or {}
    shape = [cfg.get(k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads")]
    rotary = rope.get("partial_rotary_factor", cfg.get("rotary_pct"))
    base = rope.get("rope_theta", cfg.get("rotary_emb_base"))
    rows = [
        ("architecture", "GPTNeoXForCausalLM (parallel residual, untied embeddings)"),
        ("layers / d_model / heads", " / ".join(map(str, shape))),
        ("rotary", f"{rotary} of the head dimension, base {base}"),
        ("vocabulary (padded)", cfg.get("vocab_size")),
        ("context", cfg.get("max_position_embeddings")),
        ("data variant", meta.get("variant")),
        ("step", step),
        ("tokens seen", meta.get("tokens_seen")),
        ("precision / ZeRO stage", f"{meta.get('precision')} / {meta.get('zero_stage')}"),
        ("seed", meta.get("seed")),
        ("data fingerprint", meta.get("data_fingerprint")),
        ("config hash", meta.get("config_hash")),
        ("pythia-workflow version", meta.get("code_version")),
    ]
    table = "\n".join(f"| {k} | {'' if v is None else v} |" for k, v in rows)
    metrics = meta.get("metrics") or {}
    loss = f"\nTraining loss at this step: {metrics['loss']:.4f}.\n" if metrics.get("loss") else ""
    return f"""---
library_name: transformers
tags: [pythia, gpt-neox, pythia-workflow]
---

# {repo_id} ({branch})

A Pythia-style checkpoint trained with [pythia-workflow](https://github.com/). Every
checkpoint of the suite is a branch `step{{N}}` of this repository; `main` is the final step.

| | |
|---|---|
{table}
{loss}
## Load this step

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{repo_id}", revision="{branch}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision="{branch}")
```

The data this step trained on is rows `[0, {step} * batch)` of the run's pre-shuffled sample
file: `python -m workflow.data.batch_viewer --step ...` prints them. Full metadata:
`{CHECKPOINT_JSON}`.
"""


# ------------------------------------------------------------------------------------ publishing


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
) -> dict[str, Any]:
    """Upload every file of `ckpt_dir` except ``deepspeed/`` to `repo_id` at `branch`.

    `final`: this is the last step of training, which Pythia also serves as `main` (the
    local_git backend moves `main` to the highest step by itself).

    Returns the receipt: {backend, repo_id, branch, commit, files: {name: sha256}, bytes,
    url_or_path, step, uploaded_at} (plus main_commit when `final` on the Hugging Face Hub).
    """
    ckpt_dir = Path(ckpt_dir)
    files = [f for f in checkpoint_files(ckpt_dir) if f != MODEL_CARD]
    meta_path = ckpt_dir / CHECKPOINT_JSON
    if meta_path.is_file():  # never publish damaged weights: the digests its training recorded
        meta = read_json(meta_path)
        files_ok = {
            k: v
            for k, v in (meta.get("files") or {}).items()
            if k.split("/")[0] not in EXCLUDED_DIRS
        }
        verify_files(ckpt_dir, files_ok, record=meta_path, rule=meta.get("producer"))
    step = _checkpoint_step(ckpt_dir, branch)
    card = model_card(ckpt_dir, repo_id, branch, step).encode()
    extra: dict[str, Any] = {}
    if backend == "local_git":
        if local_root is None:
            raise ValueError("backend 'local_git' needs local_root (the folder holding the repos)")
        commit, where = _publish_local_git(
            ckpt_dir, files, Path(local_root), repo_id, branch, step, card=card, force=force
        )
    elif backend == "huggingface":
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise HubError(
                f"cannot publish {repo_id}@{branch}: HF_HUB_OFFLINE is set for this process "
                "(the upload rule must run without it)"
            )
        kw = dict(endpoint=endpoint, token=_require_token(token, endpoint), private=private)
        commit, where = _publish_huggingface(
            ckpt_dir, files, repo_id, branch, step, card=card, force=force, **kw
        )
        if final and branch != "main":  # main is Pythia's alias of the final step: overwritten
            extra["main_commit"], _ = _publish_huggingface(
                ckpt_dir, files, repo_id, "main", step, card=card, force=True, **kw
            )
    else:
        raise ValueError(f"unknown hub backend {backend!r}: expected one of {list(BACKENDS)}")
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


# ----------------------------------------------------------------------------------- local git


def local_repo_path(local_root: str | os.PathLike, repo_id: str) -> Path:
    return Path(local_root) / f"{repo_id}.git"


def _git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
    r = subprocess.run(
        ["git", "--git-dir", str(repo), *args], input=input, capture_output=True, env=env
    )
    if r.returncode:
        raise HubError(f"git {' '.join(args[:2])} failed in {repo}: {r.stderr.decode().strip()}")
    return r.stdout.decode()


def _try_git(repo: Path, *args: str) -> str | None:
    r = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True)
    return r.stdout.decode().strip() if r.returncode == 0 else None


@contextlib.contextmanager
def _locked(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ensure_bare_repo(repo: Path) -> None:
    """Create the bare repo once, even with jobs racing: init in a temp dir, rename under lock."""
    if (repo / "HEAD").is_file():
        return
    with _locked(repo.with_name(repo.name + ".lock")):
        if (repo / "HEAD").is_file():
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{repo.name}.", suffix=".tmp", dir=repo.parent))
        try:
            _git(tmp, "init", "-q", "--bare", "-b", "main")
            os.replace(tmp, repo)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _write_tree(repo: Path, root: Path, files: list[str], extra: dict | None = None) -> str:
    """Blobs for `files` (and the `extra` {name: bytes}) and nested trees via mktree; returns
    the root tree id."""
    oids = _git(repo, "hash-object", "-w", "--no-filters", "--", *[str(root / f) for f in files])
    pairs = list(zip(files, oids.split(), strict=True))
    for name, data in (extra or {}).items():
        pairs.append((name, _git(repo, "hash-object", "-w", "--stdin", input=data).strip()))
    tree: dict = {}
    for name, oid in pairs:
        *dirs, leaf = name.split("/")
        node = tree
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = oid

    def mktree(node: dict) -> str:
        lines = []
        for name, value in sorted(node.items()):
            if isinstance(value, dict):
                lines.append(f"040000 tree {mktree(value)}\t{name}")
            else:
                lines.append(f"100644 blob {value}\t{name}")
        return _git(repo, "mktree", input=("\n".join(lines) + "\n").encode()).strip()

    return mktree(tree)


def _commit_env(step: int | None) -> dict:
    date = f"@{EPOCH + (step or 0)} +0000"
    return dict(
        os.environ,
        GIT_AUTHOR_NAME=GIT_NAME,
        GIT_AUTHOR_EMAIL=GIT_EMAIL,
        GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_NAME=GIT_NAME,
        GIT_COMMITTER_EMAIL=GIT_EMAIL,
        GIT_COMMITTER_DATE=date,
    )


def _commit_step(repo: Path, commit: str) -> int | None:
    m = _STEP_TRAILER.search(_git(repo, "cat-file", "commit", commit))
    return int(m.group(1)) if m else None


def _update_ref(repo: Path, ref: str, new: str, old: str | None) -> bool:
    """Compare-and-swap `ref` from `old` (None: must not exist) to `new`; False if it raced."""
    r = subprocess.run(
        ["git", "--git-dir", str(repo), "update-ref", ref, new, old or _ZERO_OID],
        capture_output=True,
    )
    return r.returncode == 0


def _publish_local_git(
    ckpt_dir: Path,
    files: list[str],
    local_root: Path,
    repo_id: str,
    branch: str,
    step: int | None,
    *,
    card: bytes,
    force: bool,
) -> tuple[str, str]:
    repo = local_repo_path(local_root, repo_id)
    repo.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(
        ["git", "check-ref-format", "--branch", branch], capture_output=True
    ).returncode:
        raise ValueError(f"invalid branch name {branch!r} for {repo_id}")
    _ensure_bare_repo(repo)
    tree = _write_tree(repo, ckpt_dir, files, extra={MODEL_CARD: card})
    message = f"Upload {branch} of {repo_id}\n\n" + (
        f"Pythia-Step: {step}\n" if step is not None else ""
    )
    ref = f"refs/heads/{branch}"
    for attempt in range(50):
        head = _try_git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        if head and _git(repo, "rev-parse", f"{head}^{{tree}}").strip() == tree:
            commit = head  # identical files: keep the existing (deterministic) commit
            break
        if head and not force and branch != "main":
            changed = _git(repo, "diff-tree", "-r", "--name-only", f"{head}^{{tree}}", tree)
            raise HubError(
                f"{repo_id}@{branch} is already published with other content "
                f"({', '.join(changed.split()) or 'different files'}); refusing to replace a "
                "published checkpoint (set hub.force: true to overwrite it)"
            )
        parents = ["-p", head] if head else []
        commit = _git(
            repo, "commit-tree", tree, *parents, input=message.encode(), env=_commit_env(step)
        ).strip()
        if _update_ref(repo, ref, commit, head):
            break
        time.sleep(0.01 * (attempt + 1))
    else:
        raise HubError(f"could not update {ref} of {repo}: too many concurrent writers")
    if branch != "main" and step is not None:
        _advance_main(repo, commit, step)
    return commit, str(repo)


def _advance_main(repo: Path, commit: str, step: int) -> None:
    """Point main at `commit` if `step` >= main's step (Pythia: main == final step); CAS + retry."""
    for attempt in range(100):
        main = _try_git(repo, "rev-parse", "--verify", "-q", "refs/heads/main^{commit}")
        if main == commit:
            return
        if main is not None:
            main_step = _commit_step(repo, main)
            if main_step is not None and main_step > step:
                return
        if _update_ref(repo, "refs/heads/main", commit, main):
            return
        time.sleep(0.01 * (attempt + 1))
    raise HubError(f"could not update main of {repo}: too many concurrent writers")


def list_branches(local_root: str | os.PathLike, repo_id: str) -> dict[str, str]:
    """{branch: commit} of a local_git repo."""
    repo = local_repo_path(local_root, repo_id)
    if not (repo / "HEAD").is_file():
        raise HubError(f"no local hub repo {repo_id} at {repo}")
    out = _git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines() if line)


# --------------------------------------------------------------------------------- huggingface


def _require_token(token: str | None, endpoint: str | None) -> str:
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
        _retry(lambda: HfApi(endpoint=endpoint, token=token).whoami(), "whoami")
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        raise HubError(
            f"the Hugging Face token was rejected by {endpoint or 'the Hub'} (HTTP {status}): "
            "check HF_TOKEN or log in again"
        ) from None
    return token


RETRY_STATUS = (429, 500, 502, 503, 504)


def _retry(fn, what: str, attempts: int = 6, base: float = 1.0):
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


def _remote_differences(api, repo_id: str, branch: str, ckpt_dir: Path, files, card) -> list:
    """Files of our checkpoint whose hash differs from (or is missing on) the Hub branch."""
    remote = {
        e.path: e
        for e in _retry(
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
        path = ckpt_dir / name if name != MODEL_CARD else None
        if getattr(entry, "lfs", None) is not None:
            local = sha256_file(path) if path else hashlib.sha256(card).hexdigest()
            same = local == entry.lfs.sha256
        else:
            if path is None:
                blob = hashlib.sha1(f"blob {len(card)}\0".encode() + card).hexdigest()
            else:
                blob = git_blob_id(path)
            same = blob == entry.blob_id
        if not same:
            different.append(name)
    return different


def _publish_huggingface(
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
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        raise HubError(
            f"cannot publish {repo_id}@{branch}: HF_HUB_OFFLINE is set for this process "
            "(the upload rule must run without it)"
        )
    api = HfApi(endpoint=endpoint, token=token)
    where = f"{api.endpoint}/{repo_id}/tree/{branch}"
    try:
        _retry(
            lambda: api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private),
            f"create {repo_id}",
        )
        refs = _retry(lambda: api.list_repo_refs(repo_id), f"refs of {repo_id}")
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
            _retry(
                lambda: api.create_branch(repo_id, branch=branch, exist_ok=True),
                f"create branch {repo_id}@{branch}",
            )
        operations = [
            CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(ckpt_dir / f)) for f in files
        ]
        operations.append(CommitOperationAdd(path_in_repo=MODEL_CARD, path_or_fileobj=card))
        info = _retry(
            lambda: api.create_commit(
                repo_id,
                operations=operations,
                revision=branch,
                commit_message=f"Upload {branch}" + (f" (step {step})" if step is not None else ""),
            ),
            f"commit {repo_id}@{branch}",
        )
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(
                f"{repo_id}: the token cannot write this repo (HTTP {status}); check the "
                "organisation and the token's permissions"
            ) from None
        raise HubError(f"{repo_id}@{branch}: upload failed (HTTP {status})") from None
    return info.oid, where


# ------------------------------------------------------------------------------------ download


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

    Atomic: `out_dir` appears complete or not at all. Check it with `verify_receipt`.
    """
    out_dir = Path(out_dir)
    if backend == "local_git":
        if local_root is None:
            raise ValueError("backend 'local_git' needs local_root (the folder holding the repos)")
        repo = local_repo_path(local_root, repo_id)
        if not (repo / "HEAD").is_file():
            raise HubError(f"no local hub repo {repo_id} at {repo}")
        commit = _try_git(repo, "rev-parse", "--verify", "-q", f"{revision}^{{commit}}")
        if commit is None:
            known = sorted(list_branches(local_root, repo_id))
            raise HubError(
                f"{repo_id} has no revision {revision!r} (branches: {', '.join(known[:20])}"
                + (" ..." if len(known) > 20 else "")
                + ")"
            )
        archive = subprocess.run(
            ["git", "--git-dir", str(repo), "archive", "--format=tar", commit],
            capture_output=True,
            check=True,
        ).stdout
        with atomic_path(out_dir, directory=True) as tmp:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
                tar.extractall(tmp, filter="data")
        return out_dir
    if backend == "huggingface":
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
        return out_dir
    raise ValueError(f"unknown hub backend {backend!r}: expected one of {list(BACKENDS)}")


# ------------------------------------------------------------------------------ push local hub


def push_local_repo(
    local_root: str | os.PathLike,
    repo_id: str,
    *,
    to_repo_id: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Publish every ``step{N}`` branch of a local_git repo to a Hub (the same layout: one
    branch per step, ``main`` = the highest step). Steps already there with the same bytes are
    skipped, so an interrupted push can simply be run again. Returns the receipts."""
    branches = list_branches(local_root, repo_id)
    steps = sorted(int(b[4:]) for b in branches if re.fullmatch(r"step\d+", b))
    if not steps:
        raise HubError(f"local repo {repo_id} in {local_root} has no step branches")
    receipts = []
    for step in steps:
        with tempfile.TemporaryDirectory(prefix=".push.") as tmp:
            ckpt = download_checkpoint(
                repo_id=repo_id,
                revision=f"step{step}",
                backend="local_git",
                out_dir=Path(tmp) / "ckpt",
                local_root=local_root,
            )
            receipts.append(
                publish_checkpoint(
                    ckpt,
                    repo_id=to_repo_id or repo_id,
                    branch=f"step{step}",
                    backend="huggingface",
                    endpoint=endpoint,
                    token=token,
                    private=private,
                    final=step == steps[-1],
                    force=force,
                )
            )
        log.info("pushed %s step%d -> %s", repo_id, step, receipts[-1]["url_or_path"])
    return receipts


def main(argv: list[str] | None = None) -> int:
    """``python -m workflow.hub push``: publish a local hub's repos to the Hugging Face Hub."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m workflow.hub", description=main.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="push local_git repos (all step branches) to a Hub")
    push.add_argument("--local-root", required=True, help="e.g. results/tiny/hub/repos")
    push.add_argument("--repo", action="append", required=True, help="org/name (repeatable)")
    push.add_argument("--to-org", default=None, help="publish under this org instead")
    push.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
    push.add_argument("--private", action="store_true")
    push.add_argument("--force", action="store_true", help="replace steps whose files differ")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for repo in a.repo:
            target = f"{a.to_org}/{repo.split('/', 1)[1]}" if a.to_org else repo
            receipts = push_local_repo(
                a.local_root,
                repo,
                to_repo_id=target,
                endpoint=a.endpoint,
                private=a.private,
                force=a.force,
            )
            print(f"{repo} -> {target}: {len(receipts)} steps")
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
