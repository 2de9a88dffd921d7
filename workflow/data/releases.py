"""EleutherAI's released Pythia training data on the HF Hub (config `data.source`).

- `pythia_preshuffled`: `EleutherAI/pile-{standard,deduped}-pythia-preshuffled`, the tokens in
  exact training order, one 2049-token row per sample, as 21 byte shards of one Megatron
  `.bin` plus its `document.idx`. Merged, it is the sample file training reads as is.
- `pythia_idxmaps`: `EleutherAI/pythia_deduped_pile_idxmaps`, the deduped Pile as documents (83
  shards); merged, it is the deduped variant's document dataset, from which `data_order`
  rebuilds GPT-NeoX v1.0's sample order.

Shards are byte slices of the merged `.bin` (Pythia's `utils/unshard_memmap.py` concatenates
them), so a shard may end mid-token. Every file is checked against a published sha256: the
list shipped in Pythia's repository (idxmaps shards and merged file), else the sha256 the Hub
publishes for LFS files, else the git blob id of a small file; a config can add its own.
Downloads go through `huggingface_hub.hf_hub_download`, which resumes a partial file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, git_blob_id, sha256_file, write_json
from workflow.data.indexed_dataset import MMapIndexedDataset, prefix_paths

SOURCES = ("pythia_preshuffled", "pythia_idxmaps")


class ReleaseError(RuntimeError):
    """A release file that is missing, corrupt or not what the config expects."""


def _published_hashes(name: str) -> dict[str, str]:
    text = resources.files("workflow.data").joinpath("release_hashes", name).read_text()
    pairs = (line.split() for line in text.splitlines() if line.strip() and line[0] != "#")
    return {file: digest for file, digest in pairs}


@dataclass(frozen=True)
class Release:
    source: str
    repos: dict[str, str]  # variant -> dataset repo id
    prefix: str  # shard i is f"{prefix}-{i:05d}-of-{num_shards - 1:05d}.bin"
    num_shards: int
    revision: str = "main"
    kind: str = "samples"  # "samples" (rows in training order) or "documents"
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> published sha256
    merged_sha256: dict[str, str] = field(default_factory=dict)  # variant -> merged .bin

    @property
    def idx_name(self) -> str:
        return f"{self.prefix}.idx"

    def shard_names(self) -> list[str]:
        last = self.num_shards - 1
        return [f"{self.prefix}-{i:05d}-of-{last:05d}.bin" for i in range(self.num_shards)]

    def files(self) -> list[str]:
        return [*self.shard_names(), self.idx_name]

    def repo(self, variant: str) -> str:
        if variant not in self.repos:
            raise ReleaseError(
                f"data.source {self.source} has no {variant!r} variant (it has "
                f"{', '.join(sorted(self.repos))}); set `variants` accordingly"
            )
        return self.repos[variant]


RELEASES = {
    "pythia_preshuffled": Release(
        source="pythia_preshuffled",
        repos={
            "standard": "EleutherAI/pile-standard-pythia-preshuffled",
            "deduped": "EleutherAI/pile-deduped-pythia-preshuffled",
        },
        prefix="document",
        num_shards=21,
        kind="samples",
    ),
    "pythia_idxmaps": Release(
        source="pythia_idxmaps",
        repos={"deduped": "EleutherAI/pythia_deduped_pile_idxmaps"},
        prefix="pile_0.87_deduped_text_document",
        num_shards=83,
        kind="documents",
        sha256=_published_hashes("pythia_deduped_pile_idxmaps.sha256"),
        # Pythia README: "The correct sha256 for the full file is ..."
        merged_sha256={
            "deduped": "0cd548efd15974d5cca78f9baddbd59220ca675535dcfc0c350087c79f504693"
        },
    ),
}


def release_for(data_config: dict) -> Release:
    """The release `data.source` names, with the overrides of `data.release` applied."""
    source = data_config["source"]
    if source not in RELEASES:
        raise ReleaseError(f"data.source {source!r} is not a released dataset ({SOURCES})")
    base = RELEASES[source]
    over = data_config.get("release") or {}
    return replace(
        base,
        repos={**base.repos, **over.get("repos", {})},
        prefix=over.get("prefix", base.prefix),
        num_shards=over.get("num_shards", base.num_shards),
        revision=over.get("revision", base.revision),
        sha256={**base.sha256, **{k: v.lower() for k, v in over.get("sha256", {}).items()}},
        merged_sha256={**base.merged_sha256, **over.get("merged_sha256", {})},
    )


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


_CHUNK = 16 << 20


def merge_shards(
    shard_paths,
    idx_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    row_length: int | None = None,
) -> dict:
    """Concatenate the byte shards into `<out_prefix>.bin`, put the `.idx` beside it, and check
    the pair: the merged sha256 (if published), the index against the data, and (for sample
    files) every row's length. Counts token ids 0 (<|endoftext|>) and 1 (<|padding|>) on the
    way, since whether the released data has EOD tokens is an open question (pythia#175).
    Nothing is left at `out_prefix` unless every check passes."""
    bin_out, idx_out = prefix_paths(out_prefix)
    shard_paths = [Path(p) for p in shard_paths]
    for p in [*shard_paths, Path(idx_path)]:
        if not p.is_file():
            raise ReleaseError(f"{p}: no such file")
    idx_dtype = MMapIndexedDataset.read_dtype(idx_path)
    itemsize = np.dtype(idx_dtype).itemsize
    counts = np.zeros(2, dtype=np.int64)
    h = hashlib.sha256()
    carry = b""
    with atomic_path(bin_out) as tmp_bin, atomic_path(idx_out) as tmp_idx:
        with open(tmp_bin, "wb") as out:
            for p in shard_paths:
                with open(p, "rb") as f:
                    while block := f.read(_CHUNK):
                        out.write(block)
                        h.update(block)
                        data = carry + block  # a shard may end mid-token
                        whole = len(data) - len(data) % itemsize
                        tokens = np.frombuffer(data[:whole], dtype=idx_dtype)
                        counts += np.bincount(np.minimum(tokens, 2), minlength=3)[:2]
                        carry = data[whole:]
        digest = h.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise ReleaseError(
                f"{bin_out}: merged sha256 {digest} differs from the published "
                f"{expected_sha256}: a shard is corrupt or missing"
            )
        shutil.copyfile(idx_path, tmp_idx)
        try:
            ds = MMapIndexedDataset.from_paths(tmp_bin, tmp_idx)
        except ValueError as e:
            raise ReleaseError(f"{idx_path} does not index the merged shards: {e}") from None
        if row_length is not None and len(ds):
            bad = np.flatnonzero(ds.sizes != row_length)
            if bad.size:
                raise ReleaseError(
                    f"{idx_path}: row {int(bad[0])} has {int(ds.sizes[bad[0]])} tokens, "
                    f"training.seq_length + 1 = {row_length}: the config's seq_length does "
                    "not match the released data"
                )
        meta = {
            "shards": len(shard_paths),
            "bytes": tmp_bin.stat().st_size,
            "sha256": digest,
            "idx_sha256": sha256_file(tmp_idx),
            "sequences": len(ds),
            "documents": len(ds.doc_idx) - 1,
            "tokens": ds.num_tokens,
            "dtype": np.dtype(idx_dtype).name,
            "eod_tokens": int(counts[0]),
            "padding_tokens": int(counts[1]),
        }
        del ds
    return meta


def write_merge_meta(out_prefix: str | os.PathLike, meta: dict, extra: dict) -> dict:
    """`<out_prefix>.json`: the merge's record; `fingerprint` is what training checks."""
    full = {**extra, **meta}
    full["fingerprint"] = hashlib.sha256(
        f"{meta['sha256']} {meta['idx_sha256']} {extra.get('seq_length')}".encode()
    ).hexdigest()
    write_json(Path(str(prefix_paths(out_prefix)[0])[: -len(".bin")] + ".json"), full)
    return full
