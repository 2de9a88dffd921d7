"""The five domains of the generated corpus: how a document of each is written.

Encyclopedic articles, prose, dialogue, code-like lines and arithmetic questions, all about one
seeded `World`, so its facts recur across domains as Wikipedia's do across the Pile. Each
generator returns (sentences, cloze_sentence): `sentences` is the body (n sentences), and
`cloze_sentence` a closing sentence whose last word (before the full stop) is given by the body,
used only for held-out documents (a LAMBADA-style cloze). `document` joins a body, a memorized
passage it hosts and the closing sentence into the text of one document.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from workflow.data.planted import Planted
from workflow.data.world import DAYS, FOODS, OBJECTS, WEATHER, World

DOMAINS = ("encyclopedic", "prose", "dialogue", "code", "arithmetic")
# Prose and facts dominate, as web text and Wikipedia dominate the Pile.
DOMAIN_WEIGHTS = (0.3, 0.25, 0.2, 0.1, 0.15)
# Memorized passages go into running text, not code.
HOST_DOMAINS = DOMAINS[:3] + DOMAINS[4:]


def host_weights(weights: tuple[float, ...]) -> tuple[float, ...]:
    """The weights of HOST_DOMAINS among `weights` (in DOMAINS order): all but code."""
    return weights[:3] + weights[4:]


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
    if min(weights) < 0 or sum(host_weights(weights)) <= 0:
        raise ValueError(
            f"domain_weights {dict(domain_weights)}: weights must be >= 0, and some domain "
            "other than code must have weight > 0 (memorized passages go into running text)"
        )
    return weights


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


def document(
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
