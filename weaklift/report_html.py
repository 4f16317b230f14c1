"""`weaklift report`: one self-contained HTML page (figures inlined as base64 PNG), readable offline.

Built from the collected tables only (weaklift.collect), never from a model. Every figure has a
caption saying what it shows and how it was computed; the results table sorts on a header click.
Figures whose data a run does not have (a ladder, an ensemble) are left out.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from weaklift import report_suite as suite_figures
from weaklift.collect import Run, calibration_table, curves_table, results_table
from weaklift.figures import Figure, png, tick
from weaklift.models.size import format_count

SUITE_FIGURE_IDS = suite_figures.FIGURE_IDS  # only when a report holds several tasks, one run each
FIGURE_IDS = ("pgr", "scaling", "heatmap", "agreement", "calibration", "curves")


@dataclass(frozen=True)
class Tables:
    rows: pd.DataFrame
    curves: pd.DataFrame
    calibration: pd.DataFrame
    runs: list[Run]

    @property
    def students(self) -> pd.DataFrame:
        return self.rows[self.rows.role == "student"]

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(self.students.method))

    @property
    def weak_models(self) -> list[str]:
        weak = self.rows[self.rows.role == "weak"].sort_values("weak_params")
        return list(dict.fromkeys(weak.weak))

    @property
    def strong_models(self) -> list[str]:
        return list(dict.fromkeys(self.rows.sort_values("strong_params").strong))

    @property
    def seeds(self) -> int:
        """Seeds per weak/strong pair: seed points of the grid, or seeds inside each run."""
        return int(self.rows.seed.nunique() * self.rows.seeds.max())


def write_report(runs: list[Run], path: str | Path, title: str = "weaklift report") -> Path:
    """Render the figures and the table for ``runs`` into one HTML file (written atomically)."""
    tables = Tables(results_table(runs).copy(), curves_table(runs), calibration_table(runs), runs)
    makers = FIGURE_MAKERS
    if suite_figures.one_run_per_task(tables) is not None:  # a suite: pooling tasks would mislead
        makers = tuple(m for m in makers if m not in POOLED_OVER_TASKS)
    figures = [fig for make in makers if (fig := _render(make, tables)) is not None]
    page = _page(title, tables, figures)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(page)
    tmp.replace(path)
    return path


def _render(make: Callable[[Tables], Figure | None], tables: Tables) -> Figure | None:
    import matplotlib

    matplotlib.use("Agg")  # headless; chosen at call time, never at import
    with matplotlib.rc_context({"figure.constrained_layout.use": True}):
        return make(tables)


# --- figures -------------------------------------------------------------------------------------


def _pair_label(weak: str, strong: str) -> str:
    return f"{tick(weak)} → {tick(strong)}"


def _fig_pgr(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    students = t.students.dropna(subset=["pgr"])
    if students.empty:
        return None
    per_seed = students.pgr_per_seed.map(json.loads)
    pairs = (
        students.sort_values(["strong_params", "weak_params"])[["weak", "strong"]]
        .drop_duplicates()
        .itertuples(index=False)
    )
    pairs = [(p.weak, p.strong) for p in pairs]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(pairs) + 2), 4))
    width = 0.8 / max(1, len(t.methods))
    for m, method in enumerate(t.methods):
        for i, (weak, strong) in enumerate(pairs):
            mine = (
                (students.method == method) & (students.weak == weak) & (students.strong == strong)
            )
            values = np.array([v for seeds in per_seed[mine] for v in seeds if v is not None])
            if not len(values):
                continue
            x = i - 0.4 + width * (m + 0.5)
            ax.scatter(np.full(len(values), x), values, s=12, color=f"C{m}", alpha=0.45)
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(
                x, values.mean(), yerr=spread, fmt="o", color=f"C{m}", capsize=4,
                label=method if i == 0 else None,
            )  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(pairs)), [_pair_label(w, s) for w, s in pairs], rotation=20, ha="right")
    ax.set_ylabel("PGR")
    ax.legend(title="method", fontsize=8)
    caption = (
        f"Performance gap recovered per method and weak → strong pair. PGR = (student − weak) / "
        f"(ceiling − weak) on test accuracy. Large markers: mean over {t.seeds} seed(s); error "
        "bars: ± one standard deviation over seeds (training variance); small dots: single seeds. "
        "0 = the student only matches its supervisor, 1 (dashed) = it matches the ceiling. Runs "
        "whose ceiling does not beat the weak model have no PGR and are left out."
    )
    return Figure("pgr", "(a) PGR per method, spread over seeds", caption, png(fig))


def _fig_scaling(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    students = t.students
    if students.empty:
        return None
    methods = t.methods
    fig, axes = plt.subplots(len(methods), 2, figsize=(11, 3.6 * len(methods)), squeeze=False)
    weak_rows = t.rows[t.rows.role == "weak"]
    ceiling = t.rows[t.rows.role == "ceiling"].groupby("strong_params").accuracy.mean()
    for r, method in enumerate(methods):
        acc_ax, pgr_ax = axes[r]
        acc_ax.plot(ceiling.index, ceiling.values, "k-s", label="strong ceiling")
        for c, weak in enumerate(t.weak_models):
            color = f"C{c}"
            mine = students[(students.method == method) & (students.weak == weak)]
            if mine.empty:
                continue
            by_size = mine.groupby("strong_params")
            acc_ax.plot(by_size.accuracy.mean(), "o-", color=color, label=f"student of {weak}")
            weak_acc = weak_rows[weak_rows.weak == weak].accuracy.mean()
            acc_ax.axhline(weak_acc, color=color, ls=":", lw=1.2)
            pgr_ax.plot(by_size.pgr.mean(), "o-", color=color, label=f"weak {weak}")
        for ax in (acc_ax, pgr_ax):
            ax.set_xscale("log")
            sizes = sorted(t.rows.strong_params.dropna().unique())
            ax.set_xticks(sizes, [format_count(int(s)) for s in sizes])
            ax.minorticks_off()
            ax.set_xlabel("strong model parameters")
        acc_ax.set_ylabel("test accuracy")
        acc_ax.set_title(f"{method}: accuracy (dotted: weak supervisor)", fontsize=10)
        pgr_ax.axhline(0, color="grey", lw=0.8)
        pgr_ax.axhline(1, color="grey", lw=0.8, ls="--")
        pgr_ax.set_ylabel("PGR")
        pgr_ax.set_title(f"{method}: PGR against strong size", fontsize=10)
        acc_ax.legend(fontsize=7)
        pgr_ax.legend(fontsize=7)
    caption = (
        "Burns et al.'s main figure. Left: test accuracy against the strong model's parameter "
        "count (log scale), one colour per weak supervisor: solid = the weakly supervised "
        "student, dotted = the weak supervisor itself, black = the strong ceiling trained on "
        f"ground truth. Right: PGR against strong size. Every point is a mean over {t.seeds} "
        "seed(s)."
    )
    return Figure("scaling", "(b) Accuracy and PGR against strong model size", caption, png(fig))


def _fig_heatmap(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    students = t.students
    if students.empty:
        return None
    weak, strong = t.weak_models, t.strong_models
    panel_width = max(4.0, 1.4 * len(strong) + 2)
    fig, axes = plt.subplots(
        1, len(t.methods), figsize=(panel_width * len(t.methods) + 1.5, max(3.2, 0.8 * len(weak) + 2.2)),
        squeeze=False,
    )  # fmt: skip
    for ax, method in zip(axes[0], t.methods, strict=True):
        grid = np.full((len(weak), len(strong)), np.nan)
        mine = students[students.method == method].groupby(["weak", "strong"]).pgr.mean()
        for (w, s), value in mine.items():
            grid[weak.index(w), strong.index(s)] = value
        image = ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
        for i in range(len(weak)):
            for j in range(len(strong)):
                text = "skipped" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(strong)), [tick(m) for m in strong], rotation=20, ha="right")
        ax.set_yticks(range(len(weak)), [tick(m) for m in weak])
        ax.set_xlabel("strong")
        ax.set_ylabel("weak")
        ax.set_title(method, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), label="PGR (colour clipped to [-1, 1])")
    caption = (
        f"Mean PGR over {t.seeds} seed(s) for every weak × strong pair, one panel per method; "
        "the number in a cell is the unclipped mean. Empty cells are pairs the sweep skipped "
        "(weak not smaller than strong) or whose PGR is undefined (ceiling ≤ weak)."
    )
    return Figure("heatmap", "(c) Weak × strong PGR grid", caption, png(fig))


def _fig_agreement(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    students = t.students.dropna(subset=["agreement_weak_right", "agreement_weak_wrong"], how="all")
    if students.empty:
        return None
    fig, axes = plt.subplots(
        1, len(t.methods), figsize=(5 * len(t.methods), 4), squeeze=False, sharey=True
    )
    for ax, method in zip(axes[0], t.methods, strict=True):
        mine = students[students.method == method]
        grouped = mine.groupby(["weak_params", "strong_params", "weak", "strong"], sort=True)
        labels = [_pair_label(w, s) for (_, _, w, s) in grouped.groups]
        x = np.arange(len(labels))
        for offset, column, name in (
            (-0.2, "agreement_weak_right", "supervisor right"),
            (0.2, "agreement_weak_wrong", "supervisor wrong"),
        ):
            ax.bar(
                x + offset, grouped[column].mean(), width=0.4, yerr=grouped[column].std(),
                capsize=3, label=name,
            )  # fmt: skip
        ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(method, fontsize=10)
    axes[0][0].set_ylabel("student–supervisor agreement")
    axes[0][0].legend(fontsize=8)
    caption = (
        "Fraction of test examples where the student's prediction equals its weak supervisor's, "
        "split by whether the supervisor was right. High agreement where the supervisor is "
        "wrong means the student imitates its errors (Burns et al. fig. 8). Bars: mean over "
        f"{t.seeds} seed(s); whiskers: standard deviation over seeds."
    )
    return Figure("agreement", "(d) Agreement with the supervisor", caption, png(fig))


def _fig_calibration(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    cal = t.calibration
    if cal.empty:
        return None
    panels = [("ceiling", "")] + [("student", m) for m in t.methods]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False, sharey=True
    )
    for ax, (role, method) in zip(axes[0], panels, strict=True):
        mine = cal[(cal.role == role) & (cal.method == method) & (cal["count"] > 0)]
        for c, strong in enumerate(t.strong_models):
            rows = mine[mine.strong == strong]
            if rows.empty:
                continue
            by_bin = rows.groupby("bin")
            weight = by_bin["count"].sum()
            conf = (rows.confidence * rows["count"]).groupby(rows.bin).sum() / weight
            acc = (rows.accuracy * rows["count"]).groupby(rows.bin).sum() / weight
            ax.plot(conf, acc, "o-", color=f"C{c}", label=strong, ms=4)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top class)")
        ax.set_title("strong ceiling" if role == "ceiling" else f"student {method}", fontsize=10)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7, title="strong")
    caption = (
        "Reliability diagrams on test: examples binned by top-class confidence (10 equal-width "
        "bins); each point is a bin's mean confidence against its accuracy, pooled over every "
        "run with that strong model (weighted by bin counts). On the dashed diagonal a model is "
        "calibrated; below it, over-confident. The ECE column of the table uses the same bins."
    )
    return Figure("calibration", "(e) Calibration of students and ceiling", caption, png(fig))


def _fig_curves(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    curves = t.curves.drop_duplicates(subset=["key", "step"])  # shared stages appear in many runs
    if curves.empty:
        return None
    panels = [("weak_model", ""), ("ceiling", "")] + [("student", m) for m in t.methods]
    panels = [
        p for p in panels if not curves[(curves.stage == p[0]) & (curves.method == p[1])].empty
    ]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.8 * len(panels), 6.4), squeeze=False)
    models = list(dict.fromkeys(curves.model))
    for col, (stage, method) in enumerate(panels):
        mine = curves[(curves.stage == stage) & (curves.method == method)]
        loss_ax, acc_ax = axes[0][col], axes[1][col]
        for model, rows in mine.groupby("model", sort=False):
            color = f"C{models.index(model)}"
            mean = rows.groupby("step")[["loss", "target_accuracy", "confidence_weight"]].mean()
            n = rows.key.nunique()
            loss_ax.plot(
                mean.index, mean.loss, color=color, lw=1, label=f"{_short_model(model)} ({n})"
            )
            acc_ax.plot(mean.index, mean.target_accuracy, color=color, lw=1)
            if mean.confidence_weight.notna().any():
                acc_ax.plot(mean.index, mean.confidence_weight, color="grey", ls="--", lw=1)
        name = {"weak_model": "weak models", "ceiling": "strong ceiling"}.get(
            stage, f"student {method}"
        )
        loss_ax.set_title(name, fontsize=10)
        loss_ax.legend(fontsize=7)
        acc_ax.set_xlabel("optimizer step")
        acc_ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("training loss")
    axes[1][0].set_ylabel("accuracy against targets")
    caption = (
        "Training curves logged at every optimizer step: the loss (top) and the fraction of the "
        "batch whose predicted class equals the argmax of the targets the model trains on "
        "(bottom: ground truth for weak models and ceiling, weak labels for students). Lines "
        "average all trained models of one backbone (count in brackets); the dashed grey line is "
        "logconf's confidence weight c(t), the share of the hardened student labels in the target."
    )
    return Figure("curves", "(f) Training curves", caption, png(fig))


def _fig_ensemble_and_ladder(t: Tables) -> Figure | None:
    import matplotlib.pyplot as plt

    members = t.rows[t.rows.role == "weak_member"]
    ladders = [(run, m, lad) for run in t.runs for m, lad in run.results.get("ladder", {}).items()]
    if members.empty and not ladders:
        return None
    panels = int(not members.empty) + int(bool(ladders))
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax_iter = iter(axes[0])
    if not members.empty:
        ax = next(ax_iter)
        means = members.groupby("method").accuracy.mean()
        ensemble = t.rows[t.rows.role == "weak"].accuracy.mean()
        ax.bar(list(means.index) + ["ensemble mean"], list(means.values) + [ensemble])
        ax.set_ylabel("test accuracy")
        ax.set_title("weak members and their ensemble", fontsize=10)
        ax.tick_params(axis="x", rotation=20)
    if ladders:
        ax = next(ax_iter)
        for i, (_, method, ladder) in enumerate(ladders):
            pgrs = [r["pgr"] for r in ladder["rungs"]]
            names = [r["model"] for r in ladder["rungs"]]
            ax.plot(names, pgrs, "o-", color=f"C{i}", label=f"{method} ladder")
            ax.axhline(ladder["direct"]["pgr"], color=f"C{i}", ls=":", label=f"{method} direct")
        ax.set_ylabel("PGR")
        ax.set_title("bootstrapping ladder", fontsize=10)
        ax.legend(fontsize=7)
    caption = (
        "Left (ensembles): test accuracy of each weak member and of the members' mean, averaged "
        "over runs. Right (ladders): PGR of each rung of the bootstrapping ladder against the "
        "direct weak → strong student (dotted), per method."
    )
    return Figure("ensemble_ladder", "(g) Ensembles and ladders", caption, png(fig))


FIGURE_MAKERS = (
    suite_figures.tasks_figure,
    suite_figures.task_pgr_figure,
    _fig_pgr,
    _fig_scaling,
    _fig_heatmap,
    _fig_agreement,
    _fig_calibration,
    _fig_curves,
    _fig_ensemble_and_ladder,
)


# Means over every run of a pair: over tasks they mix tasks without a gap into one number.
POOLED_OVER_TASKS = (_fig_pgr, _fig_scaling, _fig_heatmap)


def _short_model(fingerprint: str) -> str:
    """``zoo:minilm-l6:pkg==1`` → ``minilm-l6``; ``dir:/x/strong:abc`` → ``strong``."""
    kind, _, rest = fingerprint.partition(":")
    if kind == "zoo":
        return rest.split(":")[0]
    if kind in ("dir", "gguf"):
        return Path(rest.rsplit(":", 1)[0]).name
    return rest or fingerprint


# --- page ----------------------------------------------------------------------------------------

TABLE_COLUMNS = (
    "weak", "strong", "seed", "role", "method", "accuracy", "auroc", "ece", "pgr", "pgr_ci_low",
    "pgr_ci_high", "agreement", "agreement_weak_right", "agreement_weak_wrong", "train_seconds",
    "run",
)  # fmt: skip

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
figure { margin: 2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; max-width: 70em; }
table { border-collapse: collapse; font-size: 0.8em; } th, td { padding: 2px 6px; }
th { cursor: pointer; background: #eee; position: sticky; top: 0; } tr:nth-child(even) { background: #f7f7f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
  const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  const key = r => { const c = r.cells[col]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    if (typeof x === 'number' && typeof y === 'number') return dir * ((isNaN(x) ? Infinity : x) - (isNaN(y) ? Infinity : y));
    return dir * String(x).localeCompare(String(y)); });
  rows.forEach(r => body.appendChild(r));
}));
"""


def _page(title: str, t: Tables, figures: list[Figure]) -> str:
    tasks = ", ".join(sorted(t.rows.task.unique()))
    summary = (
        f"{len(t.runs)} run(s) on {html.escape(tasks)}; weak: {html.escape(', '.join(t.weak_models))}; "
        f"strong: {html.escape(', '.join(t.strong_models))}; methods: "
        f"{html.escape(', '.join(t.methods))}; {t.seeds} seed(s)."
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{summary}</p>",
    ]
    for fig in figures:
        data = base64.b64encode(fig.png).decode()
        parts.append(
            f"<figure id='fig-{fig.id}'><h2>{html.escape(fig.title)}</h2>"
            f"<img alt='{html.escape(fig.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
        )
    parts.append(suite_figures.section(t))
    parts.append(_table(t.rows))
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(parts)


def _table(rows: pd.DataFrame) -> str:
    shown_anyway = {"weak.model", "strong.model"}  # already the `weak` and `strong` columns
    varying = [c for c in rows.columns if "." in c and c not in shown_anyway]
    columns = [c for c in (*varying, *TABLE_COLUMNS) if c in rows.columns]
    columns = list(dict.fromkeys(columns))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for record in rows[columns].to_dict("records"):
        cells = []
        for column in columns:
            value = record[column]
            if isinstance(value, float | int | np.number) and not isinstance(value, bool):
                number = float(value)
                shown = "—" if math.isnan(number) else (
                    f"{number:.3f}" if isinstance(value, float | np.floating) else str(value)
                )  # fmt: skip
                cells.append(f"<td class='num' data-v='{number}'>{shown}</td>")
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    caption = (
        "<p>One row per run and model: the weak supervisor, the strong ceiling and each student. "
        "Click a header to sort. PGR CI: 95% bootstrap over test examples. train_seconds: wall time "
        "of the row's training stage when it was computed (shared stages are computed once).</p>"
    )
    return (
        f"<h2 id='results-table'>Results</h2>{caption}<table class='sortable' id='results'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
