"""The ``local_git`` hub backend: Pythia's layout in bare git repositories on a local disk.

A bare git repository ``{local_root}/{repo_id}.git`` written with git plumbing only
(``hash-object``, ``mktree``, ``commit-tree``, ``update-ref``), so jobs uploading different branches
of one repo in parallel never share a work tree or an index. Commits are deterministic (fixed
identity, date derived from the step): publishing identical files gives the same commit.
``main`` follows the highest step published so far. olah and the tests' minihub serve these
repositories over the Hub's HTTP API unchanged; `push.py` publishes them to a real Hub.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from workflow.core.io import atomic_path
from workflow.hub.layout import MODEL_CARD, HubError

# Deterministic commit identity. The date is EPOCH + step seconds: EPOCH is 2023-04-01 00:00 UTC
# (arXiv 2304.01373), so commit dates sort like steps and never depend on the wall clock.
GIT_NAME = "pythia-workflow"
GIT_EMAIL = "pythia-workflow@localhost"
EPOCH = 1680307200
_ZERO_OID = "0" * 40
_STEP_TRAILER = re.compile(r"^Pythia-Step: (\d+)$", re.MULTILINE)
# Checkpoint files are written as loose objects without zlib compression, as the Hub stores them
# (LFS files are stored as is): fp32/bf16 weights shrink by ~6% at git's default level, and
# compressing them took ~85% of an upload (0.9 s vs 0.1 s for a 17 MB model.safetensors).
_BLOB_CONFIG = ("-c", "core.looseCompression=0")


def local_repo_path(local_root: str | os.PathLike, repo_id: str) -> Path:
    return Path(local_root) / f"{repo_id}.git"


def _git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
    r = subprocess.run(
        ["git", "--git-dir", str(repo), *args], input=input, capture_output=True, env=env
    )
    if r.returncode:
        command = " ".join([a for a in args if a not in _BLOB_CONFIG][:2])
        raise HubError(f"git {command} failed in {repo}: {r.stderr.decode().strip()}")
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
    oids = _git(
        repo,
        *_BLOB_CONFIG,
        "hash-object",
        "-w",
        "--no-filters",
        "--",
        *[str(root / f) for f in files],
    )
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


def publish_local_git(
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
    """Commit `files` of `ckpt_dir` and the model card as `branch` of `repo_id` (refusing to
    replace other content unless `force`) and advance ``main``; return (commit, repo path)."""
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


def require_local_root(local_root: str | os.PathLike | None) -> Path:
    if local_root is None:
        raise ValueError("backend 'local_git' needs local_root (the folder holding the repos)")
    return Path(local_root)


def download_local_git(local_root: Path, repo_id: str, revision: str, out_dir: Path) -> None:
    """`repo_id` at `revision` into `out_dir`, atomically (``git archive``)."""
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
