"""The generated corpus's world: its vocabulary and the seeded facts every domain draws on.

Names are fixed lists (readable, a small vocabulary the tiny models can learn); which fact binds
which names (the capital of each country, each person's job and city, what each animal eats) is
drawn from the seed by `build_world`: ~160 facts that recur across many documents.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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
