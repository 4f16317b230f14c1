"""The ``weaklift`` command: run, validate, layers, sweep, collect, report, tasks, models.

Bad input exits with code 2 and one line naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from weaklift import distributed
from weaklift.errors import WeakliftError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weaklift", description="Weak-to-strong generalization experiments."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="run an experiment: weak model, ceiling, one student per method, PGR"
    )
    run.add_argument(
        "args", nargs="*", help="optional CONFIG.yaml, then key=value overrides (e.g. seed=1)"
    )
    run.add_argument(
        "--json", action="store_true", help="print results.json to stdout instead of a table"
    )
    validate = sub.add_parser(
        "validate", help="check a config (and overrides) without loading any model"
    )
    validate.add_argument("args", nargs="*", help="CONFIG.yaml and/or key=value overrides")
    layers = sub.add_parser(
        "layers",
        help="GT-probe accuracy per layer of the weak and strong models (weak_train -> val)",
    )
    layers.add_argument("args", nargs="*", help="optional CONFIG.yaml, then key=value overrides")
    layers.add_argument("--json", action="store_true", help="print the scores as JSON")
    sweep = sub.add_parser(
        "sweep", help="run a grid of experiments over one store (a base config plus grid:/zip:)"
    )
    sweep.add_argument("sweep_file", help="SWEEP.yaml: config keys plus grid, zip, only_weaker")
    sweep.add_argument("overrides", nargs="*", help="key=value overrides of the base config")
    sweep.add_argument(
        "--dry-run", action="store_true", help="list the points and which stages already exist"
    )
    sweep.add_argument("--workers", type=int, default=1, help="points run in parallel (local)")
    sweep.add_argument(
        "--threads", type=int, default=None, help="torch threads per point (default: CPUs/workers)"
    )
    sweep.add_argument("--executor", choices=["local", "ray"], default="local")
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start one)")
    suite = sub.add_parser(
        "suite", help="the standard suite: every suite task found under --data, as one sweep"
    )
    suite.add_argument("overrides", nargs="*", help="key=value overrides of the suite's config")
    suite.add_argument("--suite-file", default="configs/suite.yaml", help="base config and sizes")
    suite.add_argument(
        "--data", default=None, help="data folder (default: $WEAKLIFT_DATA or ../shared/data)"
    )
    suite.add_argument("--tasks", default=None, help="comma-separated subset, e.g. sciq,sst2")
    suite.add_argument("--dry-run", action="store_true", help="list the tasks and existing stages")
    suite.add_argument("--workers", type=int, default=1, help="tasks run in parallel (local)")
    suite.add_argument("--threads", type=int, default=None, help="torch threads per task")
    suite.add_argument("--executor", choices=["local", "ray"], default="local")
    suite.add_argument("--address", default=None, help="Ray cluster address (default: start one)")
    collect = sub.add_parser("collect", help="write every run under DIR as Parquet and CSV rows")
    collect.add_argument("dir", help="an output_dir (its runs/*/results.json are collected)")
    collect.add_argument("-o", "--out", default=None, help="folder for the tables (default: DIR)")
    report = sub.add_parser("report", help="one self-contained HTML report of every run under DIR")
    report.add_argument("dir", help="an output_dir (its runs/*/results.json are read)")
    report.add_argument("-o", "--out", default=None, help="HTML file (default: DIR/report.html)")
    sub.add_parser("tasks", help="list built-in tasks")
    sub.add_parser("models", help="list the offline model zoo")
    return parser


def _split_config_args(args: list[str]) -> tuple[str | None, list[str]]:
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _run(args: argparse.Namespace) -> int:
    from weaklift.config_files import load_config
    from weaklift.report import pairs_table, results_table
    from weaklift.runner import run_recorded

    path, overrides = _split_config_args(args.args)
    cfg = load_config(path, overrides)
    results, _ = run_recorded(cfg)
    if not distributed.is_main():
        return 0  # the main process reports, tracks and prints for all of them
    # The HTML report covers classification and reward-model runs; generation and pairs runs
    # print their own tables.
    classification = results.data.get("kind") not in ("generation", "pairs")
    report = write_run_report(results.run_dir) if classification else None
    if classification:
        track_runs(cfg.tracking, [(results.run_dir, {})], default_experiment="weaklift")
    if args.json:
        print(json.dumps(results.data, indent=2))
    else:
        table = pairs_table if results.data.get("kind") == "pairs" else results_table
        print(table(results.data))
        print(f"\nresults: {results.run_dir / 'results.json'}")
        if report is not None:
            print(f"report:  {report}")
    return 0


def write_run_report(run_dir) -> object:
    """report.html in a single run's folder."""
    from weaklift.collect import load_runs
    from weaklift.report_html import write_report

    runs = load_runs(run_dir.parent.parent, run_dirs=[str(run_dir)])
    return write_report(runs, run_dir / "report.html", title=f"weaklift run {run_dir.name}")


def _sweep(args: argparse.Namespace) -> int:
    from weaklift.sweep import load_sweep

    return _run_sweep(load_sweep(args.sweep_file, args.overrides), args)


def _suite(args: argparse.Namespace) -> int:
    from weaklift.suite import data_dir, load_suite

    data = data_dir(args.data)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    sweep, missing = load_suite(args.suite_file, data, tasks, args.overrides)
    for task in missing:
        print(f"  skip  {task}: no folder under {data}")
    code = _run_sweep(sweep, args)
    if not args.dry_run:
        _print_suite_summary(sweep)
    return code


def _print_suite_summary(sweep) -> None:
    """Across tasks: the summary table printed, suite.parquet and collect's tables written."""
    from weaklift.collect import load_runs, results_table, write_collected
    from weaklift.suite import format_summary, suite_summary

    output_dir = Path(sweep.base.get("output_dir", "weaklift_runs"))
    record = json.loads((output_dir / "sweeps" / f"{sweep.name}.json").read_text())
    run_dirs = [p["run_dir"] for p in record["points"] if not p["error"]]
    if not run_dirs:
        return
    runs = load_runs(output_dir, run_dirs)
    write_collected(runs, output_dir)
    per_task, medians, sign = suite_summary(results_table(runs))
    path = output_dir / "suite.parquet"
    tmp = path.with_name(f".tmp-{path.name}")
    per_task.reset_index().to_parquet(tmp, index=False)
    tmp.replace(path)
    print(format_summary(per_task, medians, sign))
    print(f"suite table: {path}; every model's row: {output_dir / 'results.parquet'}")


def _run_sweep(sweep, args: argparse.Namespace) -> int:
    """Run (or, with --dry-run, list) a sweep's points; record, report and track them."""
    import time

    from weaklift.sweep import existing_stages, run_sweep, write_sweep_record

    if distributed.world_size() > 1:
        raise WeakliftError(
            f"a sweep runs its points in one launcher (WORLD_SIZE={distributed.world_size()})",
            "start `weaklift sweep` without torchrun (--workers N runs points in parallel), or "
            "torchrun one `weaklift run` per point",
        )
    points, skipped = sweep.expand()
    print(f"sweep {sweep.name}: {len(points)} point(s), {len(skipped)} skipped")
    for skip in skipped:
        print(f"  skip  {skip.name}: {skip.reason}")
    if args.dry_run:
        for point in points:
            found, missing = existing_stages(point)
            state = "done" if missing is None else f"next: {missing}"
            print(f"  {point.index + 1:>3}  {point.name}: {len(found)} stage(s) exist; {state}")
        return 0
    start = time.perf_counter()
    outcomes = run_sweep(points, args.executor, args.workers, args.threads, args.address)
    seconds = time.perf_counter() - start
    record = write_sweep_record(sweep, outcomes, skipped, seconds)
    failed = [(p, o) for p, o in outcomes if o.error]
    executions: dict[str, int] = {}
    for _, outcome in outcomes:
        for stage, count in outcome.executions.items():
            executions[stage] = executions.get(stage, 0) + count
    done = [(p, o) for p, o in outcomes if not o.error]
    if done:
        from weaklift.collect import load_runs
        from weaklift.report_html import write_report

        output_dir = points[0].config.output_dir
        runs = load_runs(output_dir, run_dirs=[o.run_dir for _, o in done])
        report = write_report(
            runs, f"{output_dir}/report.html", title=f"weaklift sweep {sweep.name}"
        )
        track_runs(
            points[0].config.tracking,
            [(o.run_dir, p.values) for p, o in done],
            default_experiment=sweep.name,
            sweep_name=sweep.name,
            report=report,
        )
        print(f"report: {report}")
    total = sum(executions.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(executions.items())) or "none"
    print(
        f"sweep {sweep.name}: {len(done)}/{len(points)} point(s) done in {seconds:.1f} s; "
        f"{total} stage execution(s): {detail}\nrecord: {record}"
    )
    for point, outcome in failed:
        print(f"  FAILED {point.name}: {outcome.error}", file=sys.stderr)
    return 1 if failed else 0


def _collect(args: argparse.Namespace) -> int:
    from weaklift.collect import load_runs, write_collected

    runs = load_runs(args.dir)
    written = write_collected(runs, args.out or args.dir)
    for name, path in written.items():
        print(f"{name:<22} {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from weaklift.collect import load_runs
    from weaklift.report_html import write_report

    runs = load_runs(args.dir)
    out = args.out or str(Path(args.dir) / "report.html")
    print(write_report(runs, out, title=f"weaklift report: {Path(args.dir).name}"))
    return 0


def track_runs(tracking, runs, default_experiment, sweep_name=None, report=None) -> None:
    """Log finished runs to the configured tracker (none by default)."""
    if tracking.backend == "none":
        return
    from weaklift.tracking import log_runs

    log_runs(tracking, runs, default_experiment, sweep_name=sweep_name, report=report)


def _validate(args: argparse.Namespace) -> int:
    from weaklift.config import PreferenceConfig
    from weaklift.config_files import load_config
    from weaklift.tasks import task_kind

    path, overrides = _split_config_args(args.args)
    cfg = load_config(path, overrides)
    if task_kind(cfg.task) == "generation":  # reads configs and tokenizers, never weights
        from weaklift.stages.generation import check_generation_models

        check_generation_models(cfg)
    weak = ", ".join(f"{m.label} ({m.mode})" for m in cfg.weak_members)
    pairs = task_kind(cfg.task) == "pairs"  # trained with preference.losses, not methods
    print(
        f"ok: task {cfg.task.name}, weak {weak}, strong {cfg.strong.model} ({cfg.strong.mode})"
        + ("" if pairs else f", methods {[m.label for m in cfg.methods]}")
    )
    if cfg.preference is not None or pairs:
        losses = (cfg.preference or PreferenceConfig()).losses
        print(f"    preference losses {[s.label for s in losses]}")
    return 0


def _layers(args: argparse.Namespace) -> int:
    from weaklift.config_files import load_config
    from weaklift.layers import layer_scores, layers_table, scores_json

    path, overrides = _split_config_args(args.args)
    scores = layer_scores(load_config(path, overrides))
    print(json.dumps(scores_json(scores), indent=2) if args.json else layers_table(scores))
    return 0


def _tasks(_: argparse.Namespace) -> int:
    from weaklift.tasks import describe_tasks

    for name, kind, description in describe_tasks():
        print(f"{name:<18} {kind:<16} {description}")
    return 0


def _models(_: argparse.Namespace) -> int:
    from weaklift.models.zoo import describe_models

    print(
        f"{'name':<14} {'kind':<8} {'params':>7} {'hidden':>6}  {'ready':<13} {'package':<24} description"
    )
    for row in describe_models():
        ready = "converted" if row.cached else "installed" if row.installed else "not installed"
        print(
            f"{row.name:<14} {row.kind:<8} {row.params:>7} {row.hidden_size:>6}  {ready:<13} "
            f"{row.package:<24} {row.description}"
        )
    print(
        f"{'tfidf':<14} {'sklearn':<8} {'—':>7} {'—':>6}  {'installed':<13} {'scikit-learn':<24} "
        "TF-IDF n-grams + logistic regression; a cheap non-neural weak member."
    )
    print("Any local folder, .gguf file or Hugging Face hub id works as a model too.")
    return 0


COMMANDS = {
    "run": _run,
    "validate": _validate,
    "layers": _layers,
    "sweep": _sweep,
    "suite": _suite,
    "collect": _collect,
    "report": _report,
    "tasks": _tasks,
    "models": _models,
}


class _SourceFormatter(logging.Formatter):
    """Each line names the library that logged it ("[weaklift] ...", "[matplotlib] ..."): a
    line that says [weaklift] is weaklift's own, for a reader and for the tests that read logs."""

    def format(self, record: logging.LogRecord) -> str:
        record.source = record.name.split(".")[0]
        return super().format(record)


def _configure_logging() -> None:
    """weaklift's progress at INFO; other libraries' warnings only, and the chatty ones' errors
    only. transformers resets its level when it first configures itself, from
    TRANSFORMERS_VERBOSITY, so that is set too (a user's own value wins)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SourceFormatter("[%(source)s] %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("weaklift").setLevel(logging.INFO)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for noisy in ("transformers", "accelerate", "peft", "datasets", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging()
    try:
        return COMMANDS[args.command](args)
    except WeakliftError as err:
        print(f"weaklift: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
