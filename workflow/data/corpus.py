"""The embedded mini-corpus: a generated, multi-domain stand-in for the Pile, and the jsonl reader.

The tiny models of the embedded suite (at most ~11M parameters, ~100 steps on ~50k tokens) must be
able to *learn* something in that budget, or every downstream curve (loss, LAMBADA, memorization)
is flat noise. So the corpus is plain English with a small vocabulary and strong recurring
structure: a fixed, seeded "world" of ~160 facts (`The capital of Veloria is Marrow.`,
`Ada works as a baker.`) that recurs across many documents of five domains (encyclopedic, prose,
dialogue, code-like, arithmetic).

Near-duplicate clusters are planted for the dedup stage (MinHashLSH, Jaccard 0.87) with the
cluster id kept in `meta.cluster` as ground truth. So are the phenomena of the paper's case
studies: passages repeated in many documents (memorization; `meta.memorized`), arithmetic
statements with Zipf-distributed operands (term frequency), and occupation-pronoun sentences
with a controlled stereotypical skew (gender bias); `generate_corpus` returns their counts as
measured on the written text (`memorized_stats`, `arithmetic_stats`, `occupation_stats`, which
also apply to any other text). Held-out documents come from the same generator (never with a
memorized passage), are never in the training file, and each ends with a sentence whose last
word is predictable from the context (`meta.cloze_target`), so a LAMBADA-style cloze can be built.

Everything is a pure function of the seed: `random.Random` seeded with strings (hashed with
SHA-512 by Python, unlike `hash()`, so stable across processes and versions).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import zstandard

from workflow.core.io import atomic_path

log = logging.getLogger(__name__)

DOMAINS = ("encyclopedic", "prose", "dialogue", "code", "arithmetic")
# Prose and facts dominate, as web text and Wikipedia dominate the Pile.
DOMAIN_WEIGHTS = (0.3, 0.25, 0.2, 0.1, 0.15)
# Memorized passages go into running text, not code.
HOST_DOMAINS = DOMAINS[:3] + DOMAINS[4:]

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
# Occupations with a stereotyped gender, after WinoBias's occupation lists (Zhao et al. 2018).
OCCUPATIONS = {
    "carpenter": "masculine", "mechanic": "masculine", "sheriff": "masculine",
    "mover": "masculine", "laborer": "masculine", "guard": "masculine", "lawyer": "masculine",
    "janitor": "masculine", "developer": "masculine", "chief": "masculine",
    "nurse": "feminine", "secretary": "feminine", "receptionist": "feminine",
    "librarian": "feminine", "hairdresser": "feminine", "housekeeper": "feminine",
    "cashier": "feminine", "counselor": "feminine", "designer": "feminine",
    "attendant": "feminine",
}
# Words of the memorized passages only: they are drawn at random, so a passage cannot be
# predicted from the rest of the corpus, only recalled.
PASSAGE_VERBS = [
    "carried", "painted", "found", "sold", "hid", "counted", "borrowed", "mended", "dropped",
    "followed", "buried", "polished", "traded", "wrapped", "stole", "measured",
]
PASSAGE_PLACES = ["bridge", "tower", "garden", "harbor", "cellar", "mill", "chapel", "well"]
NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
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
# Planted phenomena for the case studies (reference section 6).


class ZipfOperands:
    """Operands x1 in [0, 99] and x2 in [1, x2_max] (Razeghi et al.: [1, 50]) of the arithmetic
    tasks; a small suite narrows x2 to the range its evaluation covers (term_frequency.x2).

    Each range is ranked by a seeded permutation and the value of rank r has weight
    1 / r**exponent, so operand frequencies span orders of magnitude (exponent 1.1: the most
    frequent x1 is 100**1.1 = 158 times as likely as the least) while frequency is not
    confounded with magnitude (small numbers are not easier because they are more frequent).
    Exponent 0 is uniform.
    """

    X1 = range(0, 100)
    X2_MAX = 50

    def __init__(self, seed: int, exponent: float, x2_max: int = X2_MAX):
        rng = random.Random(f"pythia-operands:{seed}")
        self.x1, self.x1_cum = self._ranked(rng, self.X1, exponent)
        self.x2, self.x2_cum = self._ranked(rng, range(1, x2_max + 1), exponent)

    @staticmethod
    def _ranked(rng: random.Random, values: range, exponent: float):
        order = list(values)
        rng.shuffle(order)
        cum, total = [], 0.0
        for rank in range(1, len(order) + 1):
            total += rank ** -float(exponent)
            cum.append(total)
        return order, cum

    def draw(self, rng: random.Random) -> tuple[int, int]:
        x1 = rng.choices(self.x1, cum_weights=self.x1_cum)[0]
        return x1, rng.choices(self.x2, cum_weights=self.x2_cum)[0]


# "x1 plus x2 is y" in running text, "Q:What is x1 plus x2? A: y" in the arithmetic domain
ARITHMETIC_RE = re.compile(r"\b(\d+) (plus|times) (\d+)(?: is|\? A:) (\d+)\b")

# Occupation-pronoun sentences by name: (template, masculine form, feminine form). The forms
# are those the Pythia intervention swaps (he->she, him->her, his->her). In `met` and `asked`
# the pronoun directly follows the occupation, an association a tiny model learns within a
# few hundred steps; across "said that" it takes far longer (data.generator.occupation_templates).
OCCUPATION_TEMPLATES = {
    "said": ("The {occ} said that {pro} would be late on {day}.", "he", "she"),
    "lost": ("The {occ} lost {pro} {obj} in {city}.", "his", "her"),
    "visit": ("People in {city} like the {occ} and often visit {pro}.", "him", "her"),
    "met": ("When I met the {occ} {pro} said hello.", "he", "she"),
    "asked": ("On {day} I asked the {occ} if {pro} had a {obj}.", "he", "she"),
}
DEFAULT_OCCUPATION_TEMPLATES = ("said", "lost", "visit")
_OCC = "|".join(sorted(OCCUPATIONS))
OCCUPATION_RES = [
    re.compile(rf"\bThe ({_OCC}) said that (he|she) "),
    re.compile(rf"\bThe ({_OCC}) lost (his|her) "),
    re.compile(rf"\bthe ({_OCC}) and often visit (him|her)\."),
    re.compile(rf"\bWhen I met the ({_OCC}) (he|she) said hello\."),
    re.compile(rf"\bI asked the ({_OCC}) if (he|she) had "),
]
MASCULINE = {"he", "him", "his"}


def occupation_subset(n: int | None = None) -> list[str]:
    """The first n planted occupations (sorted), half of each stereotyped gender (all by default):
    fewer occupations means more sentences per occupation for a tiny suite to learn from."""
    if n is None or n >= len(OCCUPATIONS):
        return sorted(OCCUPATIONS)
    if n < 2:
        raise ValueError(f"occupations must be >= 2 (one of each stereotype), got {n}")
    masc = sorted(o for o, g in OCCUPATIONS.items() if g == "masculine")
    fem = sorted(o for o, g in OCCUPATIONS.items() if g == "feminine")
    return sorted(masc[: n // 2] + fem[: n - n // 2])


def _occupation_sentence(
    rng: random.Random,
    skew: float,
    occupations: tuple[str, ...] | None = None,
    templates: tuple[str, ...] = DEFAULT_OCCUPATION_TEMPLATES,
) -> str:
    """One occupation-pronoun sentence; the pronoun fits the stereotype with probability skew."""
    occ = rng.choice(list(occupations) if occupations else sorted(OCCUPATIONS))
    template, masc, fem = OCCUPATION_TEMPLATES[rng.choice(list(templates))]
    masculine = (OCCUPATIONS[occ] == "masculine") == (rng.random() < skew)
    return template.format(
        occ=occ,
        pro=masc if masculine else fem,
        day=rng.choice(DAYS),
        obj=rng.choice(OBJECTS),
        city=rng.choice(CITIES),
    )


# Words per memorized passage (it may run one sentence over): >= 64 BPE tokens at vocab 1024,
# so a passage holds a (k=32, l=32) memorization probe.
MEMORIZED_WORDS = (56, 64)


def memorized_passages(seed: int, count: int) -> list[str]:
    """`count` distinct passages of random sentences, a pure function of (seed, count).

    Each is 56-74 words of randomly filled sentences (`Oscar borrowed seven grey kites near
    the mill of Yarrow.`): fluent, so the tokenizer sees ordinary words, yet unpredictable
    except by recalling the passage, as (k, l)-memorization needs.
    """
    rng = random.Random(f"pythia-memorized:{seed}")
    names = [n for n, _ in PEOPLE]
    animals = [a for a, _ in ANIMALS]
    passages: list[str] = []
    while len(passages) < count:
        target = rng.randint(*MEMORIZED_WORDS)
        sentences: list[str] = []
        words = 0
        while words < target:
            form = rng.randrange(3)
            if form == 0:
                sentence = (
                    f"{rng.choice(names)} {rng.choice(PASSAGE_VERBS)} {rng.choice(NUMBER_WORDS)} "
                    f"{rng.choice(COLORS)} {rng.choice(OBJECTS)}s near the "
                    f"{rng.choice(PASSAGE_PLACES)} of {rng.choice(CITIES)}."
                )
            elif form == 1:
                sentence = (
                    f"On {rng.choice(DAYS)} the {rng.choice(WEATHER)} {rng.choice(animals)} "
                    f"{rng.choice(PASSAGE_VERBS)} {rng.choice(FOODS)} from {rng.choice(COUNTRIES)}."
                )
            else:
                sentence = (
                    f"{rng.choice(COUNTRIES)} {rng.choice(PASSAGE_VERBS)} the "
                    f"{rng.choice(OBJECTS)} of {rng.choice(names)} and the "
                    f"{rng.choice(PASSAGE_PLACES)} of {rng.choice(CITIES)}."
                )
            sentences.append(sentence)
            words += len(sentence.split())
        passage = " ".join(sentences)
        if passage not in passages:
            passages.append(passage)
    return passages


@dataclass(frozen=True)
class Planted:
    """What the domains draw the planted phenomena from."""

    operands: ZipfOperands
    stereotype_skew: float
    occupations: tuple[str, ...] = ()  # () = all of OCCUPATIONS
    occupation_sentences: int = 1  # per encyclopedic and prose document
    occupation_templates: tuple[str, ...] = DEFAULT_OCCUPATION_TEMPLATES

    def occupation_block(self, rng: random.Random) -> list[str]:
        return [
            _occupation_sentence(
                rng, self.stereotype_skew, self.occupations, self.occupation_templates
            )
            for _ in range(self.occupation_sentences)
        ]


# --------------------------------------------------------------------------------------------
# Domains. Each returns (sentences, cloze_sentence): `sentences` is the body (n sentences), and
# `cloze_sentence` a closing sentence whose last word (before the full stop) is given by the
# body, used only for held-out documents.


def _encyclopedic(
    rng: random.Random, world: World, n: int, planted: Planted
) -> tuple[list[str], str]:
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
    body = [f"The capital of {country} is {city}.", *planted.occupation_block(rng)] + facts
    body = body[:n]
    cloze = rng.choice(
        [
            f"Travellers know that the capital of {country} is {city}.",
            f"So the capital of {country} is {city}.",
        ]
    )
    return body, cloze


def _prose(rng: random.Random, world: World, n: int, planted: Planted) -> tuple[list[str], str]:
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
    body = [f"{p.name} lives in {p.city}.", events[0], *planted.occupation_block(rng)] + events[1:]
    body = body[:n]
    cloze = rng.choice(
        [
            f"In the evening, {p.name} went home to {p.city}.",
            f"After a long day, {p.name} returned to {p.city}.",
        ]
    )
    return body, cloze


def _dialogue(rng: random.Random, world: World, n: int, planted: Planted) -> tuple[list[str], str]:
    p = rng.choice(world.people)
    q = rng.choice([x for x in world.people if x is not p])
    country = rng.choice(world.countries)
    a, b = planted.operands.draw(rng)
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


def _code(rng: random.Random, world: World, n: int, planted: Planted) -> tuple[list[str], str]:
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


def _arithmetic(
    rng: random.Random, world: World, n: int, planted: Planted
) -> tuple[list[str], str]:
    # Razeghi et al.'s questions in their prompt format (one per line, as a few-shot prompt
    # lists them), x1 and x2 Zipf-distributed (see ZipfOperands): what the term-frequency
    # evaluation asks, so a tiny model can learn the format and the frequent facts.
    body = []
    for _ in range(n):
        a, b = planted.operands.draw(rng)
        if rng.random() < 0.5:
            body.append(f"Q:What is {a} plus {b}? A: {a + b}")
        else:
            body.append(f"Q:What is {a} times {b}? A: {a * b}")
    a, b = planted.operands.draw(rng)
    return body, f"{a} plus {b} is {a + b}."


_GENERATORS = {
    "encyclopedic": _encyclopedic,
    "prose": _prose,
    "dialogue": _dialogue,
    "code": _code,
    "arithmetic": _arithmetic,
}


def _document(
    rng: random.Random,
    world: World,
    planted: Planted,
    domain: str,
    n: int,
    cloze: bool,
    passage: str | None = None,
) -> str:
    body, closing = _GENERATORS[domain](rng, world, n, planted)
    if passage is not None:
        # Pad a short host with more sentences of its domain to at least half the passage's
        # length: two hosts of one passage then share at most 2/3 of their word 5-grams, far
        # below the dedup threshold (0.87), so near-duplicate removal keeps every repeat.
        while 2 * sum(len(x.split()) for x in body) < len(passage.split()):
            body += _GENERATORS[domain](rng, world, n, planted)[0]
        body.insert(rng.randint(0, len(body)), passage)
    if cloze:
        body = body + [closing]
    # Code and arithmetic questions are one per line; the rest is running text.
    return ("\n" if domain in ("code", "arithmetic") else " ").join(body)


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


def domain_weight_tuple(domain_weights: Mapping[str, float] | None) -> tuple[float, ...]:
    """Weights in DOMAINS order from a {domain: weight} mapping (None: DOMAIN_WEIGHTS)."""
    if domain_weights is None:
        return DOMAIN_WEIGHTS
    unknown = sorted(set(domain_weights) - set(DOMAINS))
    missing = [d for d in DOMAINS if d not in domain_weights]
    if unknown or missing:
        raise ValueError(
            f"domain_weights {dict(domain_weights)}: expected one weight for each of "
            f"{list(DOMAINS)} (unknown: {unknown}, missing: {missing})"
        )
    weights = tuple(float(domain_weights[d]) for d in DOMAINS)
    if min(weights) < 0 or sum(weights[:3] + weights[4:]) <= 0:
        raise ValueError(
            f"domain_weights {dict(domain_weights)}: weights must be >= 0, and some domain "
            "other than code must have weight > 0 (memorized passages go into running text)"
        )
    return weights


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
    if not 1 <= lo <= hi:
        raise ValueError(f"sentences_per_document must be 1 <= min <= max, got {lo}, {hi}")
    in_clusters = near_duplicate_clusters * near_duplicate_copies
    if in_clusters > num_documents:
        raise ValueError(
            f"near_duplicate_clusters x near_duplicate_copies = {in_clusters} exceeds "
            f"num_documents = {num_documents}"
        )
    hosts = memorized_sequences * memorized_repeats
    if in_clusters + hosts > num_documents:
        raise ValueError(
            f"near-duplicate documents ({in_clusters}) + memorized_sequences x memorized_repeats "
            f"({hosts}) exceeds num_documents = {num_documents}"
        )
    if not 0.0 <= stereotype_skew <= 1.0:
        raise ValueError(f"stereotype_skew must be in [0, 1], got {stereotype_skew}")
    if operand_zipf_exponent < 0:
        raise ValueError(f"operand_zipf_exponent must be >= 0, got {operand_zipf_exponent}")
    if not 1 <= operand_x2_max <= ZipfOperands.X2_MAX:
        raise ValueError(
            f"operand_x2_max must be in [1, {ZipfOperands.X2_MAX}], got {operand_x2_max}"
        )
    weights = domain_weight_tuple(domain_weights)
    host_weights = weights[:3] + weights[4:]  # HOST_DOMAINS: all but code
    world = build_world(seed)
    if occupation_sentences < 1:
        raise ValueError(f"occupation_sentences must be >= 1, got {occupation_sentences}")
    unknown = [t for t in occupation_templates if t not in OCCUPATION_TEMPLATES]
    if unknown or not occupation_templates:
        raise ValueError(
            f"occupation_templates {list(occupation_templates)}: expected names among "
            f"{list(OCCUPATION_TEMPLATES)}"
        )
    planted = Planted(
        ZipfOperands(seed, operand_zipf_exponent, operand_x2_max),
        float(stereotype_skew),
        tuple(occupation_subset(occupations)),
        int(occupation_sentences),
        tuple(occupation_templates),
    )
    passages = memorized_passages(seed, memorized_sequences)
    rng = random.Random(f"pythia-corpus:{seed}")

    def draw(long: bool = False, passage: str | None = None) -> tuple[str, str]:
        domains = DOMAINS if passage is None else HOST_DOMAINS
        domain = rng.choices(domains, weights if passage is None else host_weights)[0]
        n = rng.randint((lo + hi + 1) // 2, hi) if long else rng.randint(lo, hi)
        return domain, _document(rng, world, planted, domain, n, cloze=False, passage=passage)

    # (text, domain, cluster, memorized passage ids)
    docs: list[tuple[str, str, int | None, list[int]]] = []
    for cluster in range(near_duplicate_clusters):
        domain, text = draw(long=True)
        for copy in _near_duplicates(rng, text, near_duplicate_copies, near_duplicate_edit_rate):
            docs.append((copy, domain, cluster, []))
    for _ in range(memorized_repeats):
        for pid, passage in enumerate(passages):
            domain, text = draw(passage=passage)
            docs.append((text, domain, None, [pid]))
    while len(docs) < num_documents:
        domain, text = draw()
        docs.append((text, domain, None, []))
    # Scatter the copies and the repeats through the corpus, as they are in a web crawl.
    rng.shuffle(docs)

    train_texts = {d[0] for d in docs}
    heldout = []
    while len(heldout) < heldout_documents:
        domain = rng.choices(DOMAINS, weights)[0]
        text = _document(rng, world, planted, domain, rng.randint(lo, hi), cloze=True)
        if text not in train_texts:  # held-out text is never trained on
            train_texts.add(text)
            heldout.append((text, domain))

    with atomic_path(train_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (text, domain, cluster, memorized) in enumerate(docs):
            meta = {"domain": domain, "cluster": cluster, "id": i, "memorized": memorized}
            f.write(json.dumps({"text": text, "meta": meta}) + "\n")
    with atomic_path(heldout_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (text, domain) in enumerate(heldout):
            target = text.rstrip(".").split()[-1]
            meta = {"domain": domain, "cluster": None, "id": i, "cloze_target": target}
            f.write(json.dumps({"text": text, "meta": meta}) + "\n")

    texts = [d[0] for d in docs]
    return {
        "seed": seed,
        "documents": len(docs),
        "heldout_documents": len(heldout),
        "documents_per_domain": dict(sorted(Counter(d[1] for d in docs).items())),
        "near_duplicate_clusters": near_duplicate_clusters,
        "documents_in_clusters": in_clusters,
        "words": sum(len(t.split()) for t in texts),
        "heldout_words": sum(len(t.split()) for t, _ in heldout),
        "world_facts": world.num_facts,
        "memorized": memorized_stats(texts, passages),
        "arithmetic": arithmetic_stats(texts),
        "occupations": occupation_stats(texts),
    }


# --------------------------------------------------------------------------------------------
# Measuring the planted phenomena on text (the written jsonl, or any decoded training data).


def memorized_stats(texts: list[str], passages: list[str]) -> dict:
    """How often each memorized passage occurs in `texts`, and the passages themselves."""
    counts = [0] * len(passages)
    for text in texts:
        for pid, passage in enumerate(passages):
            counts[pid] += text.count(passage)
    return {
        "sequences": len(passages),
        "occurrences": counts,
        "total_occurrences": sum(counts),
        "words": [len(p.split()) for p in passages],
        "passages": passages,
    }


def arithmetic_stats(texts: list[str]) -> dict:
    """Counts of arithmetic statements (either form of ARITHMETIC_RE) and of their operands."""
    ops: Counter = Counter()
    x1: Counter = Counter()
    x2: Counter = Counter()
    for text in texts:
        for a, op, b, _ in ARITHMETIC_RE.findall(text):
            ops[op] += 1
            x1[int(a)] += 1
            x2[int(b)] += 1
    return {
        "statements": sum(ops.values()),
        "plus": ops["plus"],
        "times": ops["times"],
        "x1_distinct": len(x1),
        "x1_max_count": max(x1.values(), default=0),
        "x1_min_count": min(x1.values(), default=0),
        "x2_distinct": len(x2),
        "x2_max_count": max(x2.values(), default=0),
        "x2_min_count": min(x2.values(), default=0),
        "x1_counts": {str(k): x1[k] for k in sorted(x1)},
    }


def occupation_stats(texts: list[str]) -> dict:
    """Occupation-pronoun co-occurrences and the fraction whose pronoun is stereotypical."""
    pairs: Counter = Counter()
    for text in texts:
        for pattern in OCCUPATION_RES:
            for occ, pro in pattern.findall(text):
                gender = "masculine" if pro in MASCULINE else "feminine"
                pairs[occ, gender] += 1
    total = sum(pairs.values())
    stereotypical = sum(c for (occ, g), c in pairs.items() if OCCUPATIONS[occ] == g)
    return {
        "sentences": total,
        "stereotypical": stereotypical,
        "stereotypical_fraction": round(stereotypical / total, 4) if total else None,
        "per_occupation": {
            occ: {
                "stereotype": OCCUPATIONS[occ],
                "masculine": pairs[occ, "masculine"],
                "feminine": pairs[occ, "feminine"],
            }
            for occ in sorted(OCCUPATIONS)
        },
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


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield (line_number, raw bytes) of a .jsonl or .jsonl.zst file; line numbers from 1."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    line_no = 0
    try:
        with _open_lines(path) as f:
            for line_no, raw in enumerate(f, start=1):  # noqa: B007 (used after the loop)
                yield line_no, raw
    except (zstandard.ZstdError, OSError) as e:  # corrupt frame, I/O error: name the place
        raise CorpusError(f"{path}: after line {line_no}: cannot read: {e}") from None


def byte_ranges(path: str | os.PathLike, num_shards: int) -> list[tuple[int, int]]:
    """Split a plain .jsonl into `num_shards` byte ranges; a line belongs to the range that
    holds its first byte, so shards need no index and no pass over the file."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    size = Path(path).stat().st_size
    bounds = [size * k // num_shards for k in range(num_shards + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def iter_lines_in_range(path: str | os.PathLike, lo: int, hi: int) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset, raw line) of the lines starting in [lo, hi)."""
    with open(path, "rb") as f:
        if lo > 0:
            f.seek(lo - 1)
            if f.read(1) != b"\n":  # lo is inside a line: it belongs to the previous shard
                f.readline()
        while (pos := f.tell()) < hi:
            raw = f.readline()
            if not raw:
                return
            yield pos, raw


def line_number_at(path: str | os.PathLike, offset: int) -> int:
    """1-based number of the line starting at `offset` (only computed for error messages)."""
    with open(path, "rb") as f:
        count, done = 0, 0
        while done < offset:
            block = f.read(min(1 << 24, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count + 1


def parse_jsonl_line(path, line_no: int, raw: bytes, *, skip_empty: bool = True) -> dict | None:
    """The record of one line, or None for a blank line or (when `skip_empty`) an empty text.

    Raises CorpusError naming `path:line_no` for bytes that are not UTF-8, invalid JSON, or a
    record without a string "text" field."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path}:{line_no}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
        ) from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}:{line_no}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise CorpusError(f'{path}:{line_no}: expected an object with a string "text" field')
    if skip_empty and not record["text"].strip():
        return None
    return record


def read_jsonl(
    path: str | os.PathLike, *, skip_empty: bool = True, counts: dict | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, record) for each document of a .jsonl or .jsonl.zst file.

    Line numbers start at 1. Blank lines are ignored. A record whose text is empty (or only
    whitespace) is skipped when `skip_empty` and counted in `counts["empty_skipped"]`: every
    stage that numbers documents (tokenize, dedup) reads through here or through
    `parse_jsonl_line`, so document ids agree.
    """
    if counts is not None:
        counts.setdefault("empty_skipped", 0)
    skipped = 0
    for line_no, raw in iter_jsonl_lines(path):
        record = parse_jsonl_line(path, line_no, raw, skip_empty=skip_empty)
        if record is None:
            if raw.strip():
                skipped += 1
                if counts is not None:
                    counts["empty_skipped"] += 1
            continue
        yield line_no, record
    if skipped:
        log.warning("%s: skipped %d empty document(s)", Path(path), skipped)
