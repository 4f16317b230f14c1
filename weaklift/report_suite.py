"""The suite's part of the HTML report: Burns et al.'s per-task figure, PGR per task with CIs, and
the across-task numbers (median PGR over tasks with a gap, logconf vs xent sign test).

Drawn only when a report holds two tasks or more, one run each (what ``weaklift suite`` makes).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from weaklift.figures import Figure, png
from weaklift.suite import gap_table as suite_gaps
from weaklift.suite import suite_summary

if TYPE_CHECKING:
    from weaklift.report_html import Tables  # drawn by report_html, which imports us

FIGURE_IDS = ("tasks", "task_pgr")


def one_run_per_task(t: Tables) -> pd.DataFrame | None:
    """The rows of a suite-like report (two tasks or more, one run each), else None."""
    rows = t.rows[t.rows.kind == "classification"]
    if rows.task.nunique() < 2 or (rows.groupby("task").run.nunique() > 1).any():
        return None
    return rows


def tasks_figure(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    rows = one_run_per_task(t)
    if rows is None:
        return None
    gaps = suite_gaps(rows)
    tasks = list(gaps.index)
    series = [("weak", "", "weak supervisor", "C7")]
    series += [("student", m, f"student {m}", f"C{i}") for i, m in enumerate(t.methods)]
    series += [("ceiling", "", "strong ceiling", "k")]
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(tasks) + 2), 4.2))
    width = 0.8 / len(series)
    for k, (role, method, label, color) in enumerate(series):
        mine = rows[(rows.role == role) & (rows.method == method)].set_index("task")
        present = [task for task in tasks if task in mine.index]
        if not present:
            continue
        x = np.array([tasks.index(task) for task in present]) - 0.4 + width * (k + 0.5)
        score = mine.loc[present, "score"].to_numpy(dtype=float)
        low = score - mine.loc[present, "score_ci_low"].to_numpy(dtype=float)
        high = mine.loc[present, "score_ci_high"].to_numpy(dtype=float) - score
        ax.errorbar(x, score, yerr=[low, high], fmt="o", color=color, capsize=3, label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(tasks)), [_task_label(task, gaps) for task in tasks], rotation=20)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, ncol=len(series))
    caption = (
        "Burns et al.'s per-dataset figure: test accuracy of the weak supervisor, each weakly "
        f"supervised student and the strong ceiling on every task, mean over {t.seeds} seed(s); "
        "whiskers: 95% percentile bootstrap over seeds and test examples. Tasks marked * have a "
        "ceiling − weak gap whose 95% CI (the same paired bootstrap) includes 0: there is no gap "
        "to recover and their PGR means nothing. Dotted: chance on balanced binary tasks."
    )

    return Figure("tasks", "(s1) Accuracy per task: weak, students, ceiling", caption, png(fig))


def task_pgr_figure(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    rows = one_run_per_task(t)
    if rows is None or rows[rows.role == "student"].pgr.dropna().empty:
        return None
    gaps = suite_gaps(rows)
    tasks = list(gaps.index)
    _, medians, _ = suite_summary(rows)
    medians = medians.set_index("method")
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * (len(tasks) + 1) + 2), 4.2))
    width = 0.8 / max(1, len(t.methods))
    low_lim, high_lim = -1.0, 2.0  # PGR of a tiny gap explodes; clipped, the number is printed
    for m, method in enumerate(t.methods):
        mine = rows[(rows.role == "student") & (rows.method == method)].set_index("task")
        for i, task in enumerate([*tasks, "median"]):
            if task == "median":
                if method not in medians.index:
                    continue
                value, lo, hi = medians.loc[method, ["median_pgr", "ci_low", "ci_high"]]
            elif task in mine.index:
                value, lo, hi = mine.loc[task, ["pgr", "pgr_ci_low", "pgr_ci_high"]]
            else:
                continue
            if not np.isfinite(value):
                continue
            x = i - 0.4 + width * (m + 0.5)
            faded = task != "median" and not gaps.loc[task, "gap_ok"]
            shown = float(np.clip(value, low_lim, high_lim))
            err = [[max(shown - np.clip(lo, low_lim, high_lim), 0)],
                   [max(np.clip(hi, low_lim, high_lim) - shown, 0)]]  # fmt: skip
            ax.errorbar(
                x, shown, yerr=err if np.isfinite([lo, hi]).all() else None, fmt="o",
                color=f"C{m}", alpha=0.35 if faded else 1.0, capsize=3,
                label=method if task == "median" else None, mfc="white" if faded else f"C{m}",
            )  # fmt: skip
            if shown != value:
                ax.annotate(f"{value:.1f}", (x, shown), fontsize=7, ha="center",
                            xytext=(0, 6 if value > 0 else -12), textcoords="offset points")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.axvline(len(tasks) - 0.5, color="grey", lw=0.6)
    ax.set_ylim(low_lim - 0.15, high_lim + 0.15)
    labels = [_task_label(task, gaps) for task in tasks] + ["median\n(tasks with a gap)"]
    ax.set_xticks(range(len(tasks) + 1), labels, rotation=20)
    ax.set_ylabel("PGR")
    if ax.get_legend_handles_labels()[0]:  # labelled at the medians (none without a gap)
        ax.legend(title="method", fontsize=8)
    caption = (
        "PGR per task and method (seed-mean accuracies), whiskers: 95% bootstrap over seeds and "
        "test examples; hollow, faded markers: tasks marked * whose gap CI includes 0. Last "
        "column: the median PGR over the tasks whose gap CI is above 0, whiskers a bootstrap "
        f"over those tasks. The axis is clipped to [{low_lim:g}, {high_lim:g}]; a clipped value "
        "is printed beside its marker."
    )

    return Figure("task_pgr", "(s2) PGR per task and method", caption, png(fig))


def _task_label(task: str, gaps: pd.DataFrame) -> str:
    return task if gaps.loc[task, "gap_ok"] else f"{task} *"


def section(t: Tables) -> str:
    """The across-task numbers of a suite-like report: median PGR per method, logconf vs xent."""
    rows = one_run_per_task(t)
    if rows is None:
        return ""
    per_task, medians, sign = suite_summary(rows)
    items = [
        f"<li>{html.escape(str(m.method))}: median PGR {m.median_pgr:.2f}, 95% CI "
        f"[{m.ci_low:.2f}, {m.ci_high:.2f}] over {m.tasks} task(s)</li>"
        for m in medians.itertuples()
    ]
    if sign.get("tasks"):
        items.append(
            f"<li>{sign['method']} vs {sign['baseline']} (test accuracy, every task): wins "
            f"{sign['wins']}, losses {sign['losses']}, ties {sign['ties']}; two-sided sign test "
            f"p = {sign['p_value']:.3g}</li>"
        )
    with_gap = int(per_task.gap_ok.sum())
    return (
        f"<h2 id='suite'>Across tasks</h2><p>{with_gap} of {len(per_task)} task(s) have a "
        "ceiling − weak gap whose 95% CI is above 0; medians use only those.</p>"
        f"<ul>{''.join(items)}</ul>"
    )
