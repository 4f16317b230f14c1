"""The printed table: one row per model, the ensemble and ladder sections, the PGR caveat."""

from __future__ import annotations

from weaklift.report import NOT_MEANINGFUL, results_table


def _model(acc, **extra):
    return {"accuracy": acc, "auroc": acc, **extra}


def _results(weak=0.6, ceiling=0.8, **extra):
    student = _model(0.7, pgr=0.5, pgr_ci=[0.1, 0.9], agreement=0.8)
    return {
        "task": "facts",
        "models": {"weak": ["w"], "strong": "s"},
        "num_test": 100,
        "weak": _model(weak),
        "ceiling": _model(ceiling),
        "students": {"xent": student},
        **extra,
    }


def test_table_lists_weak_students_and_ceiling_with_pgr_and_ci():
    text = results_table(_results())
    assert "weak supervisor" in text and "strong ceiling" in text
    row = next(line for line in text.splitlines() if line.startswith("student xent"))
    assert "0.700" in row and "0.50" in row and "[0.10, 0.90]" in row and "0.800" in row
    assert NOT_MEANINGFUL not in text


def test_table_warns_when_the_ceiling_does_not_beat_weak():
    assert results_table(_results(weak=0.8, ceiling=0.7)).startswith(NOT_MEANINGFUL)


def test_ensemble_and_ladder_sections():
    members = {"a": _model(0.6), "b": _model(0.65)}
    student = _model(
        0.7,
        pgr=0.5,
        pgr_ci=[0.1, 0.9],
        agreement=0.8,
        pgr_best_member=0.3,
        pgr_best_member_ci=[0, 1],
    )
    ladder = {
        "xent": {
            "rungs": [{"model": "mid", **_model(0.66, pgr=0.3, pgr_ci=[0, 1])}],
            "direct": _model(0.7, pgr=0.5),
        }
    }
    text = results_table(
        _results(
            weak_members=members, ensemble={"mean": _model(0.62)}, best_member="b", ladder=ladder
        )
        | {"students": {"a-very-long-method-label(alpha=0.75)": student}}
    )
    assert "weak a" in text and "ensemble mean" in text
    assert "best single member (chosen on weak_holdout; per seed ['b'])" in text
    assert "rung mid" in text and "direct weak → strong" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    row = next(line for line in lines if line.startswith("student a-very-long"))
    assert row.index("0.700") + len("0.700") == header.index("accuracy") + len("accuracy")


def test_table_names_the_selection_rule_seeds_and_controls():
    student = _model(0.7, pgr=0.5, pgr_ci=[0.1, 0.9], agreement=0.8, pgr_per_seed=[0.4, 0.6])
    text = results_table(
        _results(
            seeds=[0, 1],
            selection={"rule": "final", "means": "fixed budget, final epoch scored"},
            controls={"oracle": _model(0.8, pgr=1.0), "shuffled": _model(0.5, pgr=-0.5)},
            warnings=["the oracle student ... scores below the ceiling"],
        )
        | {"students": {"xent": student}}
    )
    assert "× 2 seed(s) [0, 1]" in text and "selection: final — fixed budget" in text
    assert "CI over seeds and test examples" in text
    row = next(line for line in text.splitlines() if line.startswith("student xent"))
    assert row.endswith("0.40 0.60")
    assert "control oracle (GT labels)" in text and "control shuffled labels" in text
    assert text.splitlines()[-1].startswith("warning: the oracle student")
