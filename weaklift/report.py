"""Human-readable results: the table printed at the end of a run."""

from __future__ import annotations

import math
from typing import Any


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def results_table(results: dict[str, Any]) -> str:
    """One row per model: accuracy, AUROC, PGR [95% CI], agreement with the weak supervisor."""
    header = (
        f"{'model':<28} {'accuracy':>9} {'auroc':>7} {'pgr':>7} {'pgr 95% CI':>17} {'agree':>7}"
    )
    rows = [
        f"task {results['task']}  ·  weak {' + '.join(results['models']['weak'])}  ·  strong {results['models']['strong']}"
        f"  ·  {results['num_test']} test examples",
        header,
        "-" * len(header),
    ]
    if results["ceiling"]["accuracy"] <= results["weak"]["accuracy"]:
        rows.insert(
            0, "note: the ceiling does not beat the weak supervisor here, so PGR is not meaningful"
        )
    members = results.get("weak_members", {})
    if len(members) > 1:
        for label, member in members.items():
            rows.append(_row(f"weak {label}", member))
        for how, combined in results.get("ensemble", {}).items():
            rows.append(_row(f"ensemble {how}", combined))
    rows.append(
        _row("weak supervisor" if len(members) <= 1 else "weak (ensemble mean)", results["weak"])
    )
    for label, student in results["students"].items():
        rows.append(_row(f"student {label}", student))
    rows.append(_row("strong ceiling", results["ceiling"]))
    if len(members) > 1:
        rows.append(f"\nPGR from the best single member ({results['best_member']}):")
        for label, student in results["students"].items():
            ci = student["pgr_best_member_ci"]
            rows.append(
                f"  student {label:<22} pgr {_fmt(student['pgr_best_member'], 2)}  [{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]"
            )
    for label, ladder in results.get("ladder", {}).items():
        rows.append(
            f"\nBootstrapping ladder, method {label} (PGR against the weak supervisor and strong ceiling):"
        )
        for rung in ladder["rungs"]:
            rows.append(_row(f"  rung {rung['model']}", rung))
        rows.append(_row("  direct weak → strong", ladder["direct"]))
    return "\n".join(rows)


def _row(name: str, m: dict[str, Any]) -> str:
    ci = m.get("pgr_ci")
    ci_text = f"[{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]" if ci else ""
    pgr = _fmt(m["pgr"], 2) if "pgr" in m else ""
    agree = _fmt(m["agreement"]) if "agreement" in m else ""
    return f"{name:<28} {_fmt(m['accuracy']):>9} {_fmt(m['auroc']):>7} {pgr:>7} {ci_text:>17} {agree:>7}"
