"""EleutherAI's released Pythia training data on the HF Hub (config `data.source`).

- `pythia_preshuffled`: `EleutherAI/pile-{standard,deduped}-pythia-preshuffled`, the tokens in
  exact training order, one 2049-token row per sample, as 21 byte shards of one Megatron
  `.bin` plus its `document.idx`. Merged, it is the sample file training reads as is.
- `pythia_idxmaps`: `EleutherAI/pythia_deduped_pile_idxmaps`, the deduped Pile as documents (83
  shards); merged, it is the deduped variant's document dataset, from which `pack_shuffle`
  rebuilds GPT-NeoX v1.0's sample order.

Shards are byte slices of the merged `.bin` (Pythia's `utils/unshard_memmap.py` concatenates
them), so a shard may end mid-token. Every file is checked against a published sha256: the
list shipped in Pythia's repository (idxmaps shards and merged file), else the sha256 the Hub
publishes for LFS files, else the git blob id of a small file; a config can add its own.
Downloads go through `huggingface_hub.hf_hub_download`, which resumes a partial file.

This module is the registry (`RELEASES`, `release_for`); `download_release` fetches and checks
one file, `merge_release` joins a release's shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources

SOURCES = ("pythia_preshuffled", "pythia_idxmaps")


class ReleaseError(RuntimeError):
    """A release file that is missing, corrupt or not what the config expects."""


def _published_hashes(name: str) -> dict[str, str]:
    text = resources.files("workflow.core").joinpath("release_hashes", name).read_text()
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
