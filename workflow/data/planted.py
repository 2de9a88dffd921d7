"""What the generated corpus plants for the paper's case studies, and how much of it a text holds.

- memorization (paper section 3.2): `memorized_passages`, fluent but unpredictable passages the
  corpus repeats in many documents; recalling one is (k, l)-memorization;
- term frequency (section 3.3, after Razeghi et al.): arithmetic statements whose operands are
  Zipf-distributed (`ZipfOperands`), so operand frequencies span orders of magnitude;
- gender bias (section 3.1): occupation-pronoun sentences (`OCCUPATION_TEMPLATES`) whose pronoun
  matches the occupation's stereotype (`OCCUPATIONS`, after WinoBias) with a controlled skew.

`Planted` is what the domain generators draw these from; `memorized_stats`, `arithmetic_stats` and
`occupation_stats` count them in the written corpus, or in any other text.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from workflow.data.world import (
    ANIMALS,
    CITIES,
    COLORS,
    COUNTRIES,
    DAYS,
    FOODS,
    OBJECTS,
    PEOPLE,
    WEATHER,
)

# The word tables stay compact:
# fmt: off
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
# fmt: on


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

    @classmethod
    def build(
        cls,
        seed: int,
        *,
        operand_zipf_exponent: float,
        operand_x2_max: int,
        stereotype_skew: float,
        occupations: int | None,
        occupation_sentences: int,
        occupation_templates: Sequence[str],
    ) -> Planted:
        """The phenomena of the corpus of `seed`, from `generate_corpus`'s arguments."""
        if occupation_sentences < 1:
            raise ValueError(f"occupation_sentences must be >= 1, got {occupation_sentences}")
        unknown = [t for t in occupation_templates if t not in OCCUPATION_TEMPLATES]
        if unknown or not occupation_templates:
            raise ValueError(
                f"occupation_templates {list(occupation_templates)}: expected names among "
                f"{list(OCCUPATION_TEMPLATES)}"
            )
        return cls(
            ZipfOperands(seed, operand_zipf_exponent, operand_x2_max),
            float(stereotype_skew),
            tuple(occupation_subset(occupations)),
            int(occupation_sentences),
            tuple(occupation_templates),
        )

    def occupation_block(self, rng: random.Random) -> list[str]:
        return [
            _occupation_sentence(
                rng, self.stereotype_skew, self.occupations, self.occupation_templates
            )
            for _ in range(self.occupation_sentences)
        ]


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
