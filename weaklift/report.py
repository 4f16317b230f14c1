"""Human-readable results: the table printed at the end of a run."""

from __future__ import annotations

import math
from typing import Any

NOT_MEANINGFUL = (
    "note: the ceiling does not beat the weak supervisor here, so PGR is not meaningful"
)
CONTROL_NAMES = {"oracle": "control oracle (GT labels)", "shuffled": "control shuffled labels"}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return f"[{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]" if ci else ""


def results_table(results: dict[str, Any]) -> str:
    """One row per model: mean accuracy over seeds, its spread, AUROC, PGR [95% CI], agreement with
    the weak supervisor and PGR per seed; then, where present, PGR from the best single weak member,
    the bootstrapping ladders and any warnings."""
    if results.get("kind") == "generation":
        return generation_table(results)
    named_rows = _model_rows(results)
    width = max(28, *(len(name) + 1 for name, _ in named_rows))
    header = (
        f"{'model':<{width}} {'accuracy':>9} {'±sd':>6} {'auroc':>7} {'pgr':>7} "
        f"{'pgr 95% CI':>17} {'agree':>7}  pgr per seed"
    )
    weak = " + ".join(results["models"]["weak"])
    seeds = results.get("seeds", [0])
    selection = results.get("selection", {})
    lines = [
        f"task {results['task']}  ·  weak {weak}  ·  strong {results['models']['strong']}"
        f"  ·  {results['num_test']} test examples × {len(seeds)} seed(s) {seeds}",
        *([f"selection: {selection['rule']} — {selection['means']}"] if selection else []),
        *(
            ["PGR of the seed-mean accuracies; CI over seeds and test examples"]
            if len(seeds) > 1
            else []
        ),
        header,
        "-" * len(header),
        *(_row(name, metrics, width) for name, metrics in named_rows),
    ]
    if results["ceiling"]["accuracy"] <= results["weak"]["accuracy"]:
        lines.insert(0, NOT_MEANINGFUL)
    if len(results.get("weak_members", {})) > 1:
        chosen = results.get("best_member_per_seed", [results["best_member"]])
        lines.append(
            f"\nPGR from the best single member (chosen on weak_holdout; per seed {chosen}):"
        )
        for label, student in results["students"].items():
            pgr, ci = _fmt(student["pgr_best_member"], 2), _ci(student["pgr_best_member_ci"])
            lines.append(f"  {'student ' + label:<{width}} pgr {pgr:>6}  {ci}")
    for label, ladder in results.get("ladder", {}).items():
        lines.append(f"\nBootstrapping ladder, method {label} (PGR against weak and ceiling):")
        for rung in ladder["rungs"]:
            lines.append(_row(f"  rung {rung['model']}", rung, width))
        lines.append(_row("  direct weak → strong", ladder["direct"], width))
    if results.get("by_bucket"):
        lines += ["", bucket_table(results["by_bucket"])]
    lines += [f"\nwarning: {w}" for w in results.get("warnings", [])]
    return "\n".join(lines)


def bucket_table(by_bucket: dict[str, Any]) -> str:
    """Test accuracy per quantile bucket of a task column (chess: rating): one row per bucket,
    one column per model, so a reader sees where a student passes its supervisor."""
    rows = by_bucket["buckets"]
    models = list(rows[0]["accuracy"])
    width = max(9, *(len(m) + 1 for m in models))
    header = f"{by_bucket['column'] + ' bucket':<19} {'n':>5} " + " ".join(
        f"{m:>{width}}" for m in models
    )
    title = f"Accuracy by {by_bucket['column']} (quantile buckets of test; n = examples × seeds):"
    lines = [title, header]
    lines.append("-" * len(header))
    for row in rows:
        span = f"{row['low']:g}–{row['high']:g}"
        cells = " ".join(f"{_fmt(row['accuracy'][m]):>{width}}" for m in models)
        lines.append(f"{span:<19} {row['n']:>5} {cells}")
    return "\n".join(lines)


def _model_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    members = results.get("weak_members", {})
    rows: list[tuple[str, dict[str, Any]]] = []
    if len(members) > 1:
        rows += [(f"weak {label}", m) for label, m in members.items()]
        rows += [(f"ensemble {how}", m) for how, m in results.get("ensemble", {}).items()]
    rows.append(
        ("weak supervisor" if len(members) <= 1 else "weak (ensemble mean)", results["weak"])
    )
    rows += [(f"student {label}", m) for label, m in results["students"].items()]
    rows += [
        (CONTROL_NAMES.get(label, f"control {label}"), m)
        for label, m in results.get("controls", {}).items()
    ]
    rows.append(("strong ceiling", results["ceiling"]))
    return rows


def _row(name: str, m: dict[str, Any], width: int) -> str:
    pgr = _fmt(m["pgr"], 2) if "pgr" in m else ""
    agree = _fmt(m["agreement"]) if "agreement" in m else ""
    sd = _fmt(m["accuracy_sd"]) if "accuracy_sd" in m else ""
    per_seed = " ".join(_fmt(p, 2) for p in m.get("pgr_per_seed", []))
    return (
        f"{name:<{width}} {_fmt(m['accuracy']):>9} {sd:>6} {_fmt(m['auroc']):>7} {pgr:>7} "
        f"{_ci(m.get('pgr_ci')):>17} {agree:>7}  {per_seed}"
    ).rstrip()


def generation_table(results: dict[str, Any]) -> str:
    """One row per model: the primary task metric [95% CI], the other metrics, PGR [95% CI]."""
    primary = results["primary"]
    others = [k for k in results["ceiling"] if k != primary and not k.endswith("_ci")]
    names = [("weak " + label, m) for label, m in results["weak_members"].items()]
    names += [("student " + label, m) for label, m in results["students"].items()]
    names.append(("strong ceiling", results["ceiling"]))
    width = max(28, *(len(name) + 1 for name, _ in names))
    header = (
        f"{'model':<{width}} {primary:>8} {primary + ' 95% CI':>17} "
        + " ".join(f"{k:>{max(len(k), 7)}}" for k in others)
        + f" {'pgr':>7} {'pgr 95% CI':>17}"
    )
    weak = " + ".join(results["models"]["weak"])
    lines = [
        f"task {results['task']}  ·  weak {weak}  ·  strong {results['models']['strong']}"
        f"  ·  {results['num_test']} test examples  ·  PGR on {primary} from "
        f"weak {next(iter(results['weak_members']))}",
        header,
        "-" * len(header),
    ]
    for name, m in names:
        pgr = _fmt(m["pgr"], 2) if "pgr" in m else ""
        lines.append(
            f"{name:<{width}} {_fmt(m[primary]):>8} {_ci(m.get(primary + '_ci')):>17} "
            + " ".join(f"{_fmt(m[k]):>{max(len(k), 7)}}" for k in others)
            + f" {pgr:>7} {_ci(m.get('pgr_ci')):>17}"
        )
    if results["ceiling"][primary] <= results["weak"][primary]:
        lines.insert(0, NOT_MEANINGFUL)
    if len(results["weak_members"]) > 1:
        lines.append(f"\nPGR from the best single member ({results['best_member']}):")
        for label, student in results["students"].items():
            pgr, ci = _fmt(student["pgr_best_member"], 2), _ci(student["pgr_best_member_ci"])
            lines.append(f"  {'student ' + label:<{width}} pgr {pgr:>6}  {ci}")
    if results.get("preference"):
        lines += preference_lines(results, width)
    lines += [f"note: {note}" for note in results.get("notes", [])]
    return "\n".join(lines)


def preference_lines(results: dict[str, Any], width: int) -> list[str]:
    """Preference optimisation of generation students: the change each loss made to the primary
    metric (paired CI), how the judged pairs were built, and how often the judges were right."""
    primary = results["primary"]
    lines = [f"\npreference optimisation: {primary} after − before [paired 95% CI]"]
    for label, m in results["students"].items():
        if "gain" in m:
            lines.append(
                f"  {label:<{width}} {m['gain']:+.3f}  {_ci(m['gain_ci'])}  "
                f"(before: student {m['started_from']})"
            )
    for student, report in results["preference"].items():
        weights = ", ".join(f"{k} {v:.2f}" for k, v in report["weights"].items())
        lines.append(
            f"judged pairs from student {student}: {report['pairs']} of {report['prompts']} "
            f"transfer prompts (dropped {report['dropped']}); judge weights {weights}"
        )
        lines.append("  are the judges right? chosen vs rejected against the transfer reference:")
        for key, agreement in report["judge_agreement"].items():
            lines.append(
                f"    {key:<16} chosen better {_fmt(agreement['agree'], 2)}, tied "
                f"{_fmt(agreement['tie'], 2)}, worse {_fmt(agreement['disagree'], 2)} (right on "
                f"{_fmt(agreement['agree_untied'], 2)} of untied pairs); mean chosen "
                f"{_fmt(agreement['chosen_mean'])} vs rejected {_fmt(agreement['rejected_mean'])}"
            )
        for loss, t in report["losses"].items():
            lines.append(
                f"  {loss}: {t['steps']} steps in {t['train_seconds']:.0f} s, loss "
                f"{t['loss_first_last'][0]:.3f} → {t['loss_first_last'][1]:.3f}, reward accuracy "
                f"(last quarter) {t['reward_accuracy_last_quarter']:.2f}"
            )
    return lines


def pairs_table(results: dict[str, Any]) -> str:
    """Preference optimisation from pairs: on held-out pairs, how often each model prefers the
    chosen reply (its own log-likelihood; per token) and, after training, by implicit reward; with
    weak judges, their accuracy and each weakly supervised policy's PGR on reward accuracy."""
    weak = results.get("weak")
    weak_label = f"weak judges ({' + '.join(weak['judges'])})" if weak else ""
    width = max(28, len(weak_label) + 1, *(len(label) + 7 for label in results["policies"]))
    header = (
        f"{'model':<{width}} {'pref acc':>9} {'95% CI':>14} {'per tok':>8} "
        f"{'reward acc':>11} {'95% CI':>14} {'margin':>7} {'pgr':>6} {'pgr 95% CI':>15}"
    )
    lines = [
        f"task {results['task']}  ·  policy {results['models']['policy']} "
        f"({results['models']['mode']})  ·  {results['num_train_pairs']} train pairs  ·  "
        f"{results['num_pairs']} test pairs",
        header,
        "-" * len(header),
        _pairs_row("reference (before)", results["reference"], width),
    ]
    if weak:
        lines.append(
            f"{weak_label:<{width}} {_fmt(weak['accuracy']):>9} {_ci(weak['accuracy_ci']):>14}"
        )
    lines += [_pairs_row(f"after {label}", m, width) for label, m in results["policies"].items()]
    policies = results["policies"]
    if any(
        policies[m["ceiling"]]["reward_accuracy"] <= weak["accuracy"]
        for m in policies.values()
        if "ceiling" in m
    ):
        lines.append(
            "note: a ground-truth policy (the ceiling) does not beat the weak judges here, so its "
            "students' PGR is not meaningful"
        )
    judged = results.get("judged_pairs")
    if judged:
        weights = ", ".join(f"{k} {v:.2f}" for k, v in judged["weights"].items())
        lines.append(
            f"\njudged pairs: {judged['pairs']} of {judged['prompts']} prompts kept "
            f"(dropped {judged['dropped']}); judge weights {weights}"
        )
    return "\n".join(lines)


def _pairs_row(name: str, m: dict[str, Any], width: int) -> str:
    reward = _fmt(m.get("reward_accuracy")) if "reward_accuracy" in m else ""
    margin = _fmt(m.get("reward_margin"), 2) if "reward_margin" in m else ""
    pgr = _fmt(m.get("pgr"), 2) if "pgr" in m else ""
    return (
        f"{name:<{width}} {_fmt(m['accuracy']):>9} {_ci(m['accuracy_ci']):>14} "
        f"{_fmt(m['accuracy_per_token']):>8} {reward:>11} {_ci(m.get('reward_accuracy_ci')):>14} "
        f"{margin:>7} {pgr:>6} {_ci(m.get('pgr_ci')):>15}"
    )
