"""The embedded mini-corpus (rule `corpus`): a generated, multi-domain stand-in for the Pile.

The tiny models of the embedded suite (at most ~11M parameters, ~100 steps on ~50k tokens) must be
able to *learn* something in that budget, or every downstream curve (loss, LAMBADA, memorization)
is flat noise. So the corpus is plain English with a small vocabulary and strong recurring
structure: a fixed, seeded "world" of ~160 facts (`The capital of Veloria is Marrow.`,
`Ada works as a baker.`; `world.py`) that recurs across many documents of five domains
(encyclopedic, prose, dialogue, code-like, arithmetic; `domains.py`).

Near-duplicate clusters are planted for the dedup stage (MinHashLSH, Jaccard 0.87) with the
cluster id kept in `meta.cluster` as ground truth (`near_duplicates.py`). So are the phenomena of
the paper's case studies (`planted.py`): passages repeated in many documents (memorization;
`meta.memorized`), arithmetic statements with Zipf-distributed operands (term frequency), and
occupation-pronoun sentences with a controlled stereotypical skew (gender bias);
`generate_corpus` returns their counts as measured on the written text. Held-out documents come
from the same generator (never with a memorized passage), are never in the training file, and
each ends with a sentence whose last word is predictable from the context (`meta.cloze_target`),
so a LAMBADA-style cloze can be built.

Everything is a pure function of the seed: `random.Random` seeded with strings (hashed with
SHA-512 by Python, unlike `hash()`, so stable across processes and versions).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workflow.core.io import atomic_path
from workflow.data.domains import (
    DOMAINS,
    HOST_DOMAINS,
    document,
    domain_weight_tuple,
    host_weights,
)
from workflow.data.near_duplicates import near_duplicates
from workflow.data.planted import (
    DEFAULT_OCCUPATION_TEMPLATES,
    Planted,
    ZipfOperands,
    arithmetic_stats,
    memorized_passages,
    memorized_stats,
    occupation_stats,
)
from workflow.data.world import World, build_world

# A training document: (text, domain, cluster id or None, ids of the memorized passages it hosts)
TrainingDocument = tuple[str, str, int | None, list[int]]


def generate_corpus(
    train_path: str | os.PathLike,
    heldout_path: str | os.PathLike,
    *,
    seed: int,
    num_documents: int,
    heldout_documents: int,
    near_duplicate_clusters: int,
    near_duplicate_copies: int,
    near_duplicate_edit_rate: float,
    sentences_per_document: tuple[int, int] | list[int] = (3, 9),
    memorized_sequences: int = 20,
    memorized_repeats: int = 8,
    operand_zipf_exponent: float = 1.1,
    operand_x2_max: int = ZipfOperands.X2_MAX,
    stereotype_skew: float = 0.8,
    occupations: int | None = None,
    occupation_sentences: int = 1,
    occupation_templates: Sequence[str] = DEFAULT_OCCUPATION_TEMPLATES,
    domain_weights: Mapping[str, float] | None = None,
) -> dict:
    """Write the training and held-out jsonl files; return corpus statistics.

    `num_documents` counts every training document, near-duplicate copies and the hosts of
    memorized passages included. Planted clusters are drawn from the long half of the sentence
    range: duplicated web text is mostly long boilerplate, which is why the paper's dedup removed
    a larger share of tokens (38%) than of documents.

    Planted for the case studies (the returned stats measure each on the written text):
    - memorization: `memorized_sequences` passages (`memorized_passages`), each inserted into
      `memorized_repeats` different documents outside the clusters (`meta.memorized` lists the
      passage ids), scattered through the corpus. A host has at least half as many other words
      as the passage, so hosts stay far below the dedup threshold and survive dedup;
    - term frequency: `Q:What is x1 plus/times x2? A: y` lines (arithmetic domain) and
      `x1 plus x2 is y` (dialogues) with Zipf-distributed operands, x2 <= `operand_x2_max`
      (`ZipfOperands`);
    - gender bias: `occupation_sentences` occupation-pronoun sentences in every encyclopedic and
      prose document (over `occupations` of the occupations, `occupation_subset`), whose pronoun
      matches the occupation's stereotype with probability `stereotype_skew`.
    Held-out documents get the arithmetic and occupation sentences, never a memorized passage.

    `domain_weights` (domain -> relative weight, each of DOMAINS) replaces DOMAIN_WEIGHTS, the
    share of documents drawn from each domain; hosts of memorized passages are never code.
    """
    lo, hi = (int(x) for x in sentences_per_document)
    in_clusters = near_duplicate_clusters * near_duplicate_copies
    _check_sizes(lo, hi, num_documents, in_clusters, memorized_sequences * memorized_repeats)
    _check_planted(stereotype_skew, operand_zipf_exponent, operand_x2_max)
    weights = domain_weight_tuple(domain_weights)
    world = build_world(seed)
    planted = Planted.build(
        seed,
        operand_zipf_exponent=operand_zipf_exponent,
        operand_x2_max=operand_x2_max,
        stereotype_skew=stereotype_skew,
        occupations=occupations,
        occupation_sentences=occupation_sentences,
        occupation_templates=occupation_templates,
    )
    passages = memorized_passages(seed, memorized_sequences)
    draw = _Draw(random.Random(f"pythia-corpus:{seed}"), world, planted, weights, lo, hi)
    docs = _clusters(draw, near_duplicate_clusters, near_duplicate_copies, near_duplicate_edit_rate)
    docs += _hosts(draw, passages, memorized_repeats)
    docs += _ordinary(draw, num_documents - len(docs))
    # Scatter the copies and the repeats through the corpus, as they are in a web crawl.
    draw.rng.shuffle(docs)
    heldout = _heldout_documents(draw, docs, heldout_documents)
    _write_training(train_path, docs)
    _write_heldout(heldout_path, heldout)
    return _stats(seed, docs, heldout, world, passages, near_duplicate_clusters, in_clusters)


def _stats(
    seed: int,
    docs: list[TrainingDocument],
    heldout: list[tuple[str, str]],
    world: World,
    passages: list[str],
    clusters: int,
    in_clusters: int,
) -> dict:
    """The corpus's statistics, the planted phenomena counted on the written text."""
    texts = [d[0] for d in docs]
    return {
        "seed": seed,
        "documents": len(docs),
        "heldout_documents": len(heldout),
        "documents_per_domain": dict(sorted(Counter(d[1] for d in docs).items())),
        "near_duplicate_clusters": clusters,
        "documents_in_clusters": in_clusters,
        "words": sum(len(t.split()) for t in texts),
        "heldout_words": sum(len(t.split()) for t, _ in heldout),
        "world_facts": world.num_facts,
        "memorized": memorized_stats(texts, passages),
        "arithmetic": arithmetic_stats(texts),
        "occupations": occupation_stats(texts),
    }


def _check_sizes(lo: int, hi: int, num_documents: int, in_clusters: int, hosts: int) -> None:
    if not 1 <= lo <= hi:
        raise ValueError(f"sentences_per_document must be 1 <= min <= max, got {lo}, {hi}")
    if in_clusters > num_documents:
        raise ValueError(
            f"near_duplicate_clusters x near_duplicate_copies = {in_clusters} exceeds "
            f"num_documents = {num_documents}"
        )
    if in_clusters + hosts > num_documents:
        raise ValueError(
            f"near-duplicate documents ({in_clusters}) + memorized_sequences x memorized_repeats "
            f"({hosts}) exceeds num_documents = {num_documents}"
        )


def _check_planted(stereotype_skew: float, exponent: float, x2_max: int) -> None:
    """The checks of the planted phenomena's numbers (Planted.build checks the occupations)."""
    if not 0.0 <= stereotype_skew <= 1.0:
        raise ValueError(f"stereotype_skew must be in [0, 1], got {stereotype_skew}")
    if exponent < 0:
        raise ValueError(f"operand_zipf_exponent must be >= 0, got {exponent}")
    if not 1 <= x2_max <= ZipfOperands.X2_MAX:
        raise ValueError(f"operand_x2_max must be in [1, {ZipfOperands.X2_MAX}], got {x2_max}")


@dataclass(frozen=True)
class _Draw:
    """Documents drawn from the corpus's one random stream, in the order they are drawn."""

    rng: random.Random
    world: World
    planted: Planted
    weights: tuple[float, ...]  # DOMAINS order
    lo: int  # sentences per document
    hi: int

    def training(self, long: bool = False, passage: str | None = None) -> tuple[str, str]:
        """(domain, text) of a training document: `long` ones from the long half of the
        sentence range; one hosting `passage` from HOST_DOMAINS."""
        rng = self.rng
        if passage is None:
            domain = rng.choices(DOMAINS, self.weights)[0]
        else:
            domain = rng.choices(HOST_DOMAINS, host_weights(self.weights))[0]
        lo, hi = self.lo, self.hi
        n = rng.randint((lo + hi + 1) // 2, hi) if long else rng.randint(lo, hi)
        text = document(rng, self.world, self.planted, domain, n, cloze=False, passage=passage)
        return domain, text

    def heldout(self) -> tuple[str, str]:
        """(text, domain) of a held-out document, which closes on a cloze sentence."""
        rng = self.rng
        domain = rng.choices(DOMAINS, self.weights)[0]
        n = rng.randint(self.lo, self.hi)
        return document(rng, self.world, self.planted, domain, n, cloze=True), domain


def _clusters(draw: _Draw, clusters: int, copies: int, edit_rate: float) -> list[TrainingDocument]:
    """The planted near-duplicate clusters, each of `copies` documents (ground truth for dedup)."""
    docs: list[TrainingDocument] = []
    for cluster in range(clusters):
        domain, text = draw.training(long=True)
        for copy in near_duplicates(draw.rng, text, copies, edit_rate):
            docs.append((copy, domain, cluster, []))
    return docs


def _hosts(draw: _Draw, passages: list[str], repeats: int) -> list[TrainingDocument]:
    """`repeats` documents hosting each memorized passage."""
    docs: list[TrainingDocument] = []
    for _ in range(repeats):
        for pid, passage in enumerate(passages):
            domain, text = draw.training(passage=passage)
            docs.append((text, domain, None, [pid]))
    return docs


def _ordinary(draw: _Draw, count: int) -> list[TrainingDocument]:
    """`count` documents with nothing planted but the domains' own phenomena."""
    docs: list[TrainingDocument] = []
    while len(docs) < count:
        domain, text = draw.training()
        docs.append((text, domain, None, []))
    return docs


def _heldout_documents(
    draw: _Draw, docs: list[TrainingDocument], count: int
) -> list[tuple[str, str]]:
    """`count` distinct (text, domain) documents, none of whose text is in `docs`."""
    seen = {d[0] for d in docs}
    heldout: list[tuple[str, str]] = []
    while len(heldout) < count:
        text, domain = draw.heldout()
        if text not in seen:  # held-out text is never trained on
            seen.add(text)
            heldout.append((text, domain))
    return heldout


def _write_training(path: str | os.PathLike, docs: list[TrainingDocument]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (text, domain, cluster, memorized) in enumerate(docs):
            meta = {"domain": domain, "cluster": cluster, "id": i, "memorized": memorized}
            f.write(json.dumps({"text": text, "meta": meta}) + "\n")


def _write_heldout(path: str | os.PathLike, heldout: list[tuple[str, str]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (text, domain) in enumerate(heldout):
            target = text.rstrip(".").split()[-1]
            meta = {"domain": domain, "cluster": None, "id": i, "cloze_target": target}
            f.write(json.dumps({"text": text, "meta": meta}) + "\n")
