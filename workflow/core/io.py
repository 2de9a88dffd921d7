"""Atomic outputs: write to a temporary sibling, rename into place only when complete.

A killed job therefore never leaves a half-written file (or directory) under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False):
    """Yield a temporary path next to `path`; on success rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    try:
        fault_point(path)
    except BaseException:
        _remove(tmp)
        raise
    if directory and path.exists():
        _remove(path)
    os.replace(tmp, path)


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete the temporaries a killed writer of `path` left behind (`.{name}.*.tmp`): over
    weeks of preempted jobs they would fill the disk. Only one job writes a given output at a
    time (Snakemake's lock), so any such sibling is dead."""
    path = Path(path)
    for stale in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp"):
        _remove(Path(stale))


FAULT_ENV = "PYTHIA_WORKFLOW_FAULT"


def fault_point(path: str | os.PathLike) -> None:
    """Fault injection for the reliability suite (tests/reliability), a no-op unless
    PYTHIA_WORKFLOW_FAULT is set: "kill:<glob>" SIGKILLs this job's process group (the job and
    the Snakemake that started it, as when a node dies), "enospc:<glob>" raises OSError(ENOSPC)
    (a full disk), at the moment an output whose file name matches <glob> is complete under its
    temporary name and about to be renamed into place."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    kind, _, pattern = spec.partition(":")
    if not fnmatch.fnmatchcase(Path(path).name, pattern):
        return
    if kind == "kill":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    elif kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    else:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected kill:<glob> or enospc:<glob>")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(files: list[str | os.PathLike], params: dict[str, Any]) -> str:
    """sha256 over the files' bytes and the parameters that made them."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).name.encode())
        h.update(sha256_file(f).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def git_blob_id(path: str | os.PathLike) -> str:
    """The git blob id of a file (sha1 of "blob <size>\\0" + bytes): what the Hub lists for a
    file not stored in LFS."""
    path = Path(path)
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- integrity
# Every artifact a later rule trusts records, when written, a digest of its bytes; the reader
# checks it before use, so a truncated, overwritten or bit-rotted file is refused with its name
# and the rule that rebuilds it instead of silently feeding a table or a training run.
# Files up to FULL_HASH_BYTES get a full sha256 (every file of the embedded suites); larger ones
# (Pile-scale samples, 12B checkpoints) get their size and a sha256 over SAMPLED_BLOCKS evenly
# spaced blocks including the first and last, i.e. at most 64 MiB read per check: that catches
# truncation, extension, a swapped or regenerated file and damaged headers at any scale, but not
# a flipped bit in an unsampled block (a full hash of a 600 GB sample file per training segment
# would cost more than the segment on fast storage).
FULL_HASH_BYTES = 64 << 20
SAMPLED_BLOCK = 2 << 20
SAMPLED_BLOCKS = 32


class ArtifactError(RuntimeError):
    """An artifact differs from what its producer recorded: damaged or changed since."""


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    size = os.path.getsize(path)
    if size <= FULL_HASH_BYTES:
        return {"size": size, "sha256": sha256_file(path)}
    h = hashlib.sha256()
    last = size - SAMPLED_BLOCK
    with open(path, "rb") as f:
        for i in range(SAMPLED_BLOCKS):
            f.seek(last * i // (SAMPLED_BLOCKS - 1))
            h.update(f.read(SAMPLED_BLOCK))
    return {"size": size, "sampled_sha256": h.hexdigest()}


def dir_digests(directory: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """file_digest of every file under `directory`, by relative posix path."""
    directory = Path(directory)
    return {
        p.relative_to(directory).as_posix(): file_digest(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() not in skip
    }


def rebuild_hint(rule: str | None) -> str:
    if not rule:
        return "delete it and rerun Snakemake to rebuild it"
    if "/" in rule:  # an output path: Snakemake finds the rule
        return f"rebuild it with the rule that writes it (snakemake --forcerun {rule})"
    return f"rebuild it with rule {rule} (snakemake --forcerun {rule})"


def verify_files(
    directory: str | os.PathLike,
    recorded: dict[str, dict] | None,
    *,
    record: str | os.PathLike,
    rule: str | None,
) -> None:
    """Check the files under `directory` against the digests `record` holds (nothing recorded:
    an artifact from before digests were recorded, nothing to check)."""
    for name, want in (recorded or {}).items():
        path = Path(directory) / name
        if not path.is_file():
            problem = "is missing"
        elif os.path.getsize(path) != want.get("size"):
            problem = (
                f"has {os.path.getsize(path)} bytes, {want.get('size')} when it was written "
                "(truncated or overwritten)"
            )
        elif file_digest(path) != want:
            problem = "has other bytes than when it was written (its sha256 differs)"
        else:
            continue
        raise ArtifactError(f"{path} {problem}, says the digest in {record}; {rebuild_hint(rule)}")


CHECKSUM_KEY = "sha256"


def _canonical(obj: dict) -> bytes:
    body = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def write_checked_json(path: str | os.PathLike, obj: dict) -> None:
    """write_json with the sha256 of the rest of the object inside (small JSON results that
    feed tables: a hand edit or a damaged file is refused by read_checked_json)."""
    write_json(path, {**obj, CHECKSUM_KEY: hashlib.sha256(_canonical(obj)).hexdigest()})


def read_checked_json(path: str | os.PathLike, *, rule: str | None = None) -> dict:
    try:
        obj = read_json(path)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: unreadable JSON ({e}); {rebuild_hint(rule)}") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{path}: not a JSON object; {rebuild_hint(rule)}")
    rule = obj.get("producer") or rule
    recorded = obj.get(CHECKSUM_KEY)
    if recorded is not None and recorded != hashlib.sha256(_canonical(obj)).hexdigest():
        raise ArtifactError(
            f"{path}: its content does not match the sha256 written with it (changed or damaged "
            f"since); {rebuild_hint(rule)}"
        )
    return obj
