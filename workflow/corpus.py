"""The embedded mini-corpus: a generated, multi-domain stand-in for the Pile, and the jsonl reader.

The tiny models of the embedded suite (at most ~11M parameters, ~100 steps on ~50k tokens) must be
able to *learn* something in that budget, or every downstream curve (loss, LAMBADA, memorization)
is flat noise. So the corpus is plain English with a small vocabulary and strong recurring
structure: a fixed, seeded "world" of ~160 facts (`The capital of Veloria is Marrow.`,
`Ada works as a baker.`) that recurs across many documents of five domains (encyclopedic, prose,
dialogue, code-like, arithmetic).

Near-duplicate clusters are planted for the dedup stage (MinHashLSH, Jaccard 0.87) with the
cluster id kept in `meta.cluster` as ground truth. Held-out documents come from the same
generator, are never in the training file, and each ends with a sentence whose last word is
predictable from the context (`meta.cloze_target`), so a LAMBADA-style cloze can be built.

Everything is a pure function of the seed: `random.Random` seeded with strings (hashed with
SHA-512 by Python, unlike `hash()`, so stable across processes and versions).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from workflow.io import atomic_path

log = logging.getLogger(__name__)

DOMAINS = ("encyclopedic", "prose", "dialogue", "code", "arithmetic")
# Prose and facts dominate, as web text and Wikipedia dominate the Pile.
DOMAIN_WEIGHTS = (0.3, 0.25, 0.2, 0.1, 0.15)

# Every pair inside a planted cluster keeps at least this word-5-gram Jaccard similarity: well
# above the 0.87 dedup threshold, so the 128-permutation MinHash estimate (std ~0.02 here)
# cannot fall below the threshold and the ground truth stays unambiguous.
CLUSTER_MIN_JACCARD = 0.95


class CorpusError(ValueError):
    """A malformed corpus file; the message names the file and line."""


# --------------------------------------------------------------------------------------------
# The world: names are fixed lists (readable, small vocabulary); which fact binds which names is
# drawn from the seed.

# The name tables stay compact:
# fmt: off
COUNTRIES = [
    "Veloria", "Kestria", "Amberland", "Norvania", "Talmora", "Ostrelia", "Brundia",
    "Caldera", "Sylvania", "Dravonia", "Elmaria", "Fenwick", "Galmoor", "Harrowin",
    "Istria", "Jorvik", "Lunaria", "Merovia", "Pellara", "Quorin", "Rhodania", "Solmere",
    "Tirana", "Umbria",
]
CITIES = [
    "Marrow", "Ashford", "Brightwater", "Coldharbor", "Dunmore", "Eastwood", "Fairhaven",
    "Greystone", "Highmoor", "Ironbridge", "Kingsport", "Lakeside", "Millbrook",
    "Northgate", "Oakridge", "Pinecrest", "Queensbury", "Redcliff", "Stonehill",
    "Thornbury", "Westmarch", "Windmere", "Yarrow", "Zephyr",
]
REGIONS = ["north", "south", "east", "west"]
FOODS = [
    "bread", "cheese", "apples", "honey", "fish", "soup", "rice", "pears", "cakes", "tea",
    "plums", "beans",
]
PEOPLE = [  # (name, pronoun)
    ("Ada", "she"), ("Ben", "he"), ("Cora", "she"), ("Dan", "he"), ("Eva", "she"),
    ("Finn", "he"), ("Gina", "she"), ("Hugo", "he"), ("Ida", "she"), ("Jack", "he"),
    ("Kate", "she"), ("Leo", "he"), ("Mia", "she"), ("Ned", "he"), ("Olga", "she"),
    ("Paul", "he"), ("Rosa", "she"), ("Sam", "he"), ("Tina", "she"), ("Tom", "he"),
    ("Una", "she"), ("Vic", "he"), ("Wendy", "she"), ("Max", "he"), ("Lily", "she"),
    ("Oscar", "he"), ("Nora", "she"), ("Ray", "he"), ("Zoe", "she"), ("Carl", "he"),
    ("Iris", "she"), ("Owen", "he"),
]
JOBS = [  # (singular, plural)
    ("baker", "bakers"), ("teacher", "teachers"), ("doctor", "doctors"),
    ("farmer", "farmers"), ("nurse", "nurses"), ("painter", "painters"),
    ("sailor", "sailors"), ("miner", "miners"), ("writer", "writers"),
    ("builder", "builders"), ("singer", "singers"), ("tailor", "tailors"), ("cook", "cooks"),
    ("judge", "judges"), ("pilot", "pilots"), ("clerk", "clerks"),
]
ANIMALS = [  # (animal, where it lives)
    ("fox", "forest"), ("owl", "forest"), ("duck", "pond"), ("frog", "pond"),
    ("goat", "hills"), ("horse", "field"), ("cow", "field"), ("bear", "mountains"),
    ("crab", "sea"), ("seal", "sea"), ("mouse", "barn"), ("cat", "house"),
]
ANIMAL_FOODS = ["berries", "grass", "seeds", "fish", "nuts", "worms", "leaves", "corn"]
OBJECTS = ["lamp", "chair", "door", "hat", "coat", "boat", "cup", "kite", "bell", "box"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "grey"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEATHER = ["sunny", "rainy", "cold", "warm", "windy", "quiet"]
# Words a near-duplicate copy may substitute in (typos, small rewrites).
FILLER = [
    "very", "old", "small", "big", "new", "good", "long", "the", "a", "then", "also",
    "still", "often", "later", "some",
]
# fmt: on


@dataclass(frozen=True)
class Person:
    name: str
    pronoun: str
    job: str
    jobs: str  # plural, for "many people work as bakers"
    city: str


@dataclass(frozen=True)
class World:
    countries: list[str]
    capital: dict[str, str]  # country -> capital city
    region: dict[str, str]  # country -> compass region
    famous_for: dict[str, str]  # city -> food
    people: list[Person]
    animal_food: dict[str, str]
    animal_place: dict[str, str]
    object_color: dict[str, str]

    def residents(self, city: str) -> list[Person]:
        return [p for p in self.people if p.city == city]

    @property
    def num_facts(self) -> int:
        return (
            len(self.capital)
            + len(self.region)
            + len(self.famous_for)
            + 2 * len(self.people)
            + len(self.animal_food)
            + len(self.animal_place)
            + len(self.object_color)
        )


def build_world(seed: int) -> World:
    rng = random.Random(f"pythia-world:{seed}")
    cities = CITIES[:]
    rng.shuffle(cities)
    capital = dict(zip(COUNTRIES, cities, strict=True))
    region = {c: rng.choice(REGIONS) for c in COUNTRIES}
    famous_for = {c: rng.choice(FOODS) for c in CITIES}
    people = []
    for name, pronoun in PEOPLE:
        job, jobs = rng.choice(JOBS)
        people.append(Person(name, pronoun, job, jobs, rng.choice(CITIES)))
    animal_food = {a: rng.choice(ANIMAL_FOODS) for a, _ in ANIMALS}
    animal_place = dict(ANIMALS)
    object_color = {o: rng.choice(COLORS) for o in OBJECTS}
    return World(
        COUNTRIES[:], capital, region, famous_for, people, animal_food, animal_place, object_color
    )


# --------------------------------------------------------------------------------------------
# Domains. Each returns (sentences, cloze_sentence): `sentences` is the body (n sentences), and
# `cloze_sentence` a closing sentence whose last word (before the full stop) is given by the
# body, used only for held-out documents.


def _encyclopedic(rng: random.Random, world: World, n: int) -> tuple[list[str], str]:
    country = rng.choice(world.countries)
    city = world.capital[country]
    facts = [
        f"{country} is a country in the {world.region[country]}.",
        f"{city} is famous for its {world.famous_for[city]}.",
        f"{city} is the capital of {country}.",
    ]
    for p in world.residents(city):
        facts.append(f"{p.name} lives in {city} and works as a {p.job}.")
        facts.append(f"Many people in {city} work as {p.jobs}.")
    neighbour = rng.choice(world.countries)
    if neighbour != country:
        facts.append(f"The capital of {neighbour} is {world.capital[neighbour]}.")
        facts.append(f"{neighbour} is a country in the {world.region[neighbour]}.")
    animal = rng.choice(list(world.animal_food))
    facts.append(f"The {animal} lives in the {world.animal_place[animal]}.")
    facts.append(f"The {animal} eats {world.animal_food[animal]}.")
    rng.shuffle(facts)
    # The capital fact opens the article, as a lead sentence does.
    body = [f"The capital of {country} is {city}."] + facts
    body = body[:n]
    cloze = rng.choice(
        [
            f"Travellers know that the capital of {country} is {city}.",
            f"So the capital of {country} is {city}.",
        ]
    )
    return body, cloze


def _prose(rng: random.Random, world: World, n: int) -> tuple[list[str], str]:
    p = rng.choice(world.people)
    q = rng.choice([x for x in world.people if x is not p])
    pro = p.pronoun.capitalize()
    day = rng.choice(DAYS)
    animal = rng.choice(list(world.animal_food))
    obj = rng.choice(OBJECTS)
    food = world.famous_for[p.city]
    events = [
        f"{p.name} works as a {p.job}.",
        f"On {day}, {p.name} walked to the market in {p.city}.",
        f"{pro} bought some {food}, because {p.city} is famous for its {food}.",
        f"On the way, {p.name} saw a {animal} near the {world.animal_place[animal]}.",
        f"The {animal} was eating {world.animal_food[animal]}.",
        f"At the market {p.name} met {q.name}, who works as a {q.job}.",
        f"{q.name} lives in {q.city}.",
        f"They talked about the {rng.choice(WEATHER)} weather.",
        f"{p.name} had a {world.object_color[obj]} {obj}.",
        f"{pro} was happy to see {q.name} again.",
    ]
    body = [f"{p.name} lives in {p.city}."] + events
    body = body[:n]
    cloze = rng.choice(
        [
            f"In the evening, {p.name} went home to {p.city}.",
            f"After a long day, {p.name} returned to {p.city}.",
        ]
    )
    return body, cloze


def _dialogue(rng: random.Random, world: World, n: int) -> tuple[list[str], str]:
    p = rng.choice(world.people)
    q = rng.choice([x for x in world.people if x is not p])
    country = rng.choice(world.countries)
    a, b = rng.randint(1, 10), rng.randint(1, 10)
    turns = [
        f'"Hello, {q.name}," said {p.name}.',
        f'"Hello, {p.name}. Where do you live?" asked {q.name}.',
        f'"I live in {p.city}," said {p.name}.',
        f'"What is your job?" asked {q.name}.',
        f'"I work as a {p.job}," said {p.name}.',
        f'"What is the capital of {country}?" asked {p.name}.',
        f'"The capital of {country} is {world.capital[country]}," said {q.name}.',
        f'"How much is {a} plus {b}?" asked {q.name}.',
        f'"{a} plus {b} is {a + b}," said {p.name}.',
        f'"Goodbye, {q.name}," said {p.name}.',
    ]
    body = turns[:n]
    if n > len(turns):
        body += [
            f'"I like {rng.choice(FOODS)}," said {rng.choice((p, q)).name}.'
            for _ in range(n - len(turns))
        ]
    cloze = f"{q.name} now knew that {p.name} lives in {p.city}."
    if n < 3:  # the home city was not said yet: close on what was
        cloze = f"{q.name} smiled at {p.name}."
    return body, cloze


def _code(rng: random.Random, world: World, n: int) -> tuple[list[str], str]:
    countries = rng.sample(world.countries, 3)
    person = rng.choice(world.people)
    x, y = rng.randint(1, 20), rng.randint(1, 20)
    lines = [
        "capital = {}",
        *[f'capital["{c}"] = "{world.capital[c]}"' for c in countries],
        f'job["{person.name}"] = "{person.job}"',
        f"x = {x}",
        f"y = {y}",
        f"print(x + y)  # {x + y}",
        f"print(x * y)  # {x * y}",
        f'print(capital["{countries[0]}"])  # {world.capital[countries[0]]}',
        "for name in capital:",
        "    print(name, capital[name])",
    ]
    body = lines[:n]
    c = countries[0] if n >= 2 else None
    if c is None:
        cloze = f"# {x} plus {y} is {x + y}."
    else:
        cloze = f"# so the capital of {c} is {world.capital[c]}."
    return body, cloze


def _arithmetic(rng: random.Random, world: World, n: int) -> tuple[list[str], str]:
    body = []
    for _ in range(n):
        op = rng.randrange(3)
        a, b = rng.randint(0, 12), rng.randint(0, 12)
        if op == 0:
            body.append(f"{a} plus {b} is {a + b}.")
        elif op == 1:
            a, b = max(a, b), min(a, b)
            body.append(f"{a} minus {b} is {a - b}.")
        else:
            body.append(f"{a} times {b} is {a * b}.")
    a, b = rng.randint(0, 12), rng.randint(0, 12)
    return body, f"{a} plus {b} is {a + b}."


_GENERATORS = {
    "encyclopedic": _encyclopedic,
    "prose": _prose,
    "dialogue": _dialogue,
    "code": _code,
    "arithmetic": _arithmetic,
}


def _document(rng: random.Random, world: World, domain: str, n: int, cloze: bool) -> str:
    body, closing = _GENERATORS[domain](rng, world, n)
    if cloze:
        body = body + [closing]
    # Code is one statement per line; the rest is running text.
    return ("\n" if domain == "code" else " ").join(body)


# --------------------------------------------------------------------------------------------
# Near-duplicates


def _shingles(words: list[str], k: int = 5) -> set[tuple[str, ...]]:
    if len(words) < k:
        return {tuple(words)}
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _near_duplicates(rng: random.Random, text: str, copies: int, edit_rate: float) -> list[str]:
    """`copies` variants of `text` (the first is `text`): each edits ~edit_rate of its words.

    An edit substitutes a word, unless that would bring the copy's word-5-gram Jaccard with
    any member below CLUSTER_MIN_JACCARD (one interior substitution alters 5 shingles, which
    a short document cannot afford); then it changes the word's case instead, as re-formatted
    copies of a web page do, which the lower-cased shingles do not see. Copies are therefore
    never byte-identical once edited, yet always well above the dedup threshold.
    """
    lines = [line.split(" ") for line in text.split("\n")]
    member_shingles = [_shingles(text.lower().split())]
    members = [text]
    for _ in range(copies - 1):
        words = [line[:] for line in lines]
        positions = [(i, j) for i, line in enumerate(words) for j in range(len(line))]
        n_edits = sum(rng.random() < edit_rate for _ in positions)
        for _ in range(n_edits):
            i, j = rng.choice(positions)
            trial = [line[:] for line in words]
            trial[i][j] = rng.choice(FILLER)
            sh = _shingles(" ".join(" ".join(line) for line in trial).lower().split())
            if all(_jaccard(sh, m) >= CLUSTER_MIN_JACCARD for m in member_shingles):
                words = trial
            else:
                word = words[i][j]
                words[i][j] = word.upper() if word != word.upper() else word.lower()
        current = "\n".join(" ".join(line) for line in words)
        members.append(current)
        member_shingles.append(_shingles(current.lower().split()))
    return members


# --------------------------------------------------------------------------------------------


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
) -> dict:
    """Write the training and held-out jsonl files; return corpus statistics.

    `num_documents` counts every training document, near-duplicate copies included. Planted
    clusters are drawn from the long half of the sentence range: duplicated web text is mostly
    long boilerplate, which is why the paper's dedup removed a larger share of tokens (38%) than
    of documents.
    """
    lo, hi = (int(x) for x in sentences_per_document)
    if not 1 <= lo <= hi:
        raise ValueError(f"sentences_per_document must be 1 <= min <= max, got {lo}, {hi}")
    in_clusters = near_duplicate_clusters * near_duplicate_copies
    if in_clusters > num_documents:
        raise ValueError(
            f"near_duplicate_clusters x near_duplicate_copies = {in_clusters} exceeds "
            f"num_documents = {num_documents}"
        )
    world = build_world(seed)
    rng = random.Random(f"pythia-corpus:{seed}")

    def draw(long: bool = False) -> tuple[str, str]:
        domain = rng.choices(DOMAINS, DOMAIN_WEIGHTS)[0]
        n = rng.randint((lo + hi + 1) // 2, hi) if long else rng.randint(lo, hi)
        return domain, _document(rng, world, domain, n, cloze=False)

    # (text, domain, cluster)
    docs: list[tuple[str, str, int | None]] = []
    for cluster in range(near_duplicate_clusters):
        domain, text = draw(long=True)
        for copy in _near_duplicates(rng, text, near_duplicate_copies, near_duplicate_edit_rate):
            docs.append((copy, domain, cluster))
    while len(docs) < num_documents:
        domain, text = draw()
        docs.append((text, domain, None))
    # Scatter the copies through the corpus, as duplicates are in a web crawl.
    rng.shuffle(docs)

    train_texts = {text for text, _, _ in docs}
    heldout = []
    while len(heldout) < heldout_documents:
        domain = rng.choices(DOMAINS, DOMAIN_WEIGHTS)[0]
        text = _document(rng, world, domain, rng.randint(lo, hi), cloze=True)
        if text not in train_texts:  # held-out text is never trained on
            train_texts.add(text)
            heldout.append((text, domain))

    with atomic_path(train_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (text, domain, cluster) in enumerate(docs):
            meta = {"domain": domain, "cluster": cluster, "id": i}
            f.write(json.dumps({"text": text, "meta": meta}) + "\n")
    with atomic_path(heldout_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (text, domain) in enumerate(heldout):
            target = text.rstrip(".").split()[-1]
            meta = {"domain": domain, "cluster": None, "id": i, "cloze_target": target}
            f.write(json.dumps({"text": text, "meta": meta}) + "\n")

    return {
        "seed": seed,
        "documents": len(docs),
        "heldout_documents": len(heldout),
        "documents_per_domain": dict(sorted(Counter(d for _, d, _ in docs).items())),
        "near_duplicate_clusters": near_duplicate_clusters,
        "documents_in_clusters": in_clusters,
        "words": sum(len(t.split()) for t, _, _ in docs),
        "heldout_words": sum(len(t.split()) for t, _ in heldout),
        "world_facts": world.num_facts,
    }


# --------------------------------------------------------------------------------------------
# Reading


def _open_lines(path: Path):
    """Binary line iterator over a .jsonl or .jsonl.zst file (streamed, never all in RAM)."""
    raw = open(path, "rb")
    if path.name.endswith(".zst"):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)
    return raw


def read_jsonl(
    path: str | os.PathLike, *, skip_empty: bool = True, counts: dict | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, record) for each document of a .jsonl or .jsonl.zst file.

    Line numbers start at 1. Blank lines are ignored. A record whose text is empty (or only
    whitespace) is skipped when `skip_empty` and counted in `counts["empty_skipped"]`: every
    stage that numbers documents (tokenize, dedup) reads through here, so document ids agree.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if counts is not None:
        counts.setdefault("empty_skipped", 0)
    skipped = 0
    line_no = 0
    try:
        with _open_lines(path) as f:
            for line_no, raw in enumerate(f, start=1):  # noqa: B007 (used after the loop)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CorpusError(
                        f"{path}:{line_no}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
                        f"{e.start + 1})"
                    ) from None
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(
                        f"{path}:{line_no}: not valid JSON: {e.msg} (column {e.colno})"
                    ) from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise CorpusError(
                        f'{path}:{line_no}: expected an object with a string "text" field'
                    )
                if skip_empty and not record["text"].strip():
                    skipped += 1
                    if counts is not None:
                        counts["empty_skipped"] += 1
                    continue
                yield line_no, record
    except (zstandard.ZstdError, OSError) as e:  # corrupt frame, I/O error: name the place
        raise CorpusError(f"{path}: after line {line_no}: cannot read: {e}") from None
    if skipped:
        log.warning("%s: skipped %d empty document(s)", path, skipped)
