"""The data stage's jobs (rules/data.smk) for a corpus source (`generated` or `pile_jsonl`): the
corpus shards each per-shard job reads, the LSH band groups of the bucket jobs, and every data
job's resources from the corpus size. The job list (`workflow.plan.jobs.SuiteJobs.data`) holds
one; the rules are declared over it and the plan costs the same jobs.

Sizes come from the config, so the plan needs no file: the generated corpus's document count
(at `GENERATED_BYTES_PER_DOCUMENT`), or `data.pile`'s per-shard estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any

from workflow.core.layout import Layout
from workflow.data import resources
from workflow.data.dedup_buckets import BATCH_MEMBERS, PASS_DOCUMENTS, band_groups
from workflow.data.dedup_clusters import WINDOW_PAIRS
from workflow.data.dedup_signatures import lsh_bands
from workflow.data.pack_shuffle import num_epochs
from workflow.data.resources import DataSizes
from workflow.data.shards import CorpusShard, corpus_shards

GENERATED_BYTES_PER_DOCUMENT = 700  # the embedded corpus: 3120 documents, ~2.1 MB of jsonl


@dataclass(frozen=True)
class DataJob:
    """Jobs of one data rule: how many, and what each asks for."""

    rule: str
    count: int
    resources: dict


class DataJobs:
    """The data jobs of a corpus-sourced suite."""

    def __init__(self, config: Mapping[str, Any], layout: Layout):
        self.data = config["data"]
        self.compute = config["compute"]
        self.training = config["training"]
        self.layout = layout
        self.source = self.data["source"]

    # ------------------------------------------------------------------ what the jobs read

    @property
    def raw_names(self) -> list[str]:
        """The raw source files (`download` outputs), by the URL's file name."""
        return [PurePosixPath(u).name for u in self.data["pile"]["urls"]]

    def corpus_files(self) -> list[str]:
        if self.source == "pile_jsonl":
            return [self.layout.path("data", "raw", name) for name in self.raw_names]
        return [self.layout.path("data", "corpus", "train.jsonl")]

    def _shards(self, parts: int) -> list[CorpusShard]:
        if self.source == "pile_jsonl":  # whole files, read streaming; the held-out tail
            return corpus_shards(self.corpus_files(), 1, self.data["pile"]["heldout_documents"])
        return corpus_shards(self.corpus_files(), parts)

    @cached_property
    def tokenize_shards(self) -> list[CorpusShard]:
        """One `tokenize` job each: a raw file, or a byte range of the generated corpus."""
        return self._shards(self.data["tokenize"]["shards"])

    @cached_property
    def signature_shards(self) -> list[CorpusShard]:
        """One `dedup_signatures` job each."""
        return self._shards(self.data["dedup"]["shards"])

    def shard_prefix(self, part="{part}") -> str:
        return self.layout.path("data", "standard", "shards", f"part{part}")

    def signatures(self, part="{part}") -> str:
        return self.layout.path("data", "dedup", "signatures", f"part{part}.npy")

    def bucket_pairs(self, group="{group}") -> str:
        return self.layout.path("data", "dedup", "buckets", f"group{group}.npy")

    @cached_property
    def band_groups(self) -> list[tuple[int, int]]:
        dedup = self.data["dedup"]
        bands, _ = lsh_bands(dedup["threshold"], dedup["num_perm"])
        return band_groups(bands, dedup["bands_per_job"])

    # ------------------------------------------------------------------ sizes and resources

    @cached_property
    def sizes(self) -> DataSizes:
        if self.source == "pile_jsonl":
            pile = self.data["pile"]
            files = len(self.raw_names)
            return DataSizes(
                documents=pile["shard_documents"] * files - pile["heldout_documents"],
                jsonl_bytes=math.ceil(pile["shard_gb"] * 1e9 * files),
                shards=len(self.tokenize_shards),
                signature_shards=len(self.signature_shards),
                stored_shard_bytes=math.ceil(pile["shard_zst_gb"] * 1e9),
                heldout_documents=pile["heldout_documents"],
            )
        documents = self.data["generator"]["num_documents"]
        return DataSizes(
            documents=documents,
            jsonl_bytes=documents * GENERATED_BYTES_PER_DOCUMENT,
            shards=len(self.tokenize_shards),
            signature_shards=len(self.signature_shards),
        )

    def resources(self, rule: str) -> dict:
        """mem_mb, disk_mb, runtime (and threads) of one job of a data rule."""
        sizes, compute, dedup = self.sizes, self.compute, self.data["dedup"]
        bands = self.band_groups[-1][1]
        per_group = self.band_groups[0][1] - self.band_groups[0][0]
        tokenizer_kind = self.data["tokenizer"]["kind"]
        estimates = {
            "corpus": lambda: resources.corpus(sizes, compute),
            "tokenizer": lambda: resources.tokenizer(sizes, compute, tokenizer_kind),
            "download": lambda: resources.download(sizes, compute),
            "heldout": lambda: resources.heldout(sizes, compute),
            "tokenize": lambda: resources.tokenize(sizes, compute, self.data["workers"]),
            "tokenize_merge": lambda: resources.tokenize_merge(sizes, compute),
            "dedup_signatures": lambda: resources.dedup_signatures(
                sizes, compute, dedup["num_perm"], bands
            ),
            "dedup_buckets": lambda: resources.dedup_buckets(
                sizes, compute, dedup["num_perm"], per_group, PASS_DOCUMENTS, BATCH_MEMBERS
            ),
            "dedup_clusters": lambda: resources.dedup_clusters(sizes, compute, bands, WINDOW_PAIRS),
            "deduped_documents": lambda: resources.deduped_documents(sizes, compute),
        }
        return estimates[rule]()

    def pack_resources(self, samples: int) -> dict:
        """pack_shuffle of either variant (the deduped one, with half the tokens, as bound)."""
        seq = self.training["seq_length"]
        epochs = num_epochs(max(self.sizes.tokens // 2, 2), seq, samples)
        return resources.pack_shuffle(self.sizes, self.compute, epochs, samples, seq + 1)

    def jobs(self, variants) -> list[DataJob]:
        """The data jobs a trained suite's DAG runs (not `heldout`: only embedded eval tasks
        read the held-out documents, and the Pile's suite evaluates on lm-eval's)."""
        rules: list[tuple[str, int]] = []
        if self.source == "pile_jsonl":
            rules.append(("download", len(self.raw_names)))
        else:
            rules.append(("corpus", 1))
        rules += [
            ("tokenizer", 1),
            ("tokenize", len(self.tokenize_shards)),
            ("tokenize_merge", 1),
        ]
        if "deduped" in variants:
            rules += [
                ("dedup_signatures", len(self.signature_shards)),
                ("dedup_buckets", len(self.band_groups)),
                ("dedup_clusters", 1),
                ("deduped_documents", 1),
            ]
        return [DataJob(rule, n, self.resources(rule)) for rule, n in rules]

    def oversized(self, node: Mapping[str, Any], variants) -> list[str]:
        """Why a data job would not fit one node of `compute.node` (memory or cores), with the
        setting that shrinks it; empty when all fit."""
        raw = self.source == "pile_jsonl"  # one tokenize and signature job per raw file
        fixes = {
            "tokenize": "fewer data.workers" + ("" if raw else " or more data.tokenize.shards"),
            "dedup_signatures": "smaller raw files" if raw else "more data.dedup.shards",
            "dedup_buckets": "fewer data.dedup.bands_per_job",
        }
        rules = [j.rule for j in self.jobs(variants)] + ["pack_shuffle"]
        samples = math.ceil(
            self.training["train_iters"]
            * self.training["global_batch_size"]
            * (1 + self.data["sample_margin"])
        )
        problems = []
        for rule in rules:
            res = self.pack_resources(samples) if rule == "pack_shuffle" else self.resources(rule)
            want = {"mem_mb": res["mem_mb"], "cpus": res.get("threads", 1)}
            for key, value in want.items():
                if value > node[key]:
                    fix = fixes.get(rule, "a node with more")
                    problems.append(
                        f"data: a {rule} job asks one node for {value} {key}, but "
                        f"compute.node.{key} is {node[key]} ({fix})"
                    )
        return problems
