"""The ``weaklift`` command: run, validate, layers, tasks, models.

Bad input exits with code 2 and one line naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

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
    sub.add_parser("tasks", help="list built-in tasks")
    sub.add_parser("models", help="list the offline model zoo")
    return parser


def _split_config_args(args: list[str]) -> tuple[str | None, list[str]]:
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _run(args: argparse.Namespace) -> int:
    from weaklift.config import load_config
    from weaklift.pipeline import run_experiment
    from weaklift.report import pairs_table, results_table

    path, overrides = _split_config_args(args.args)
    cfg = load_config(path, overrides)
    results = run_experiment(cfg)
    if args.json:
        print(json.dumps(results.data, indent=2))
    else:
        table = pairs_table if results.data.get("kind") == "pairs" else results_table
        print(table(results.data))
        print(f"\nresults: {results.run_dir / 'results.json'}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from weaklift.config import load_config

    path, overrides = _split_config_args(args.args)
    cfg = load_config(path, overrides)
    if cfg.task_kind == "generation":  # reads configs and tokenizers, never weights
        from weaklift.stages.generation import check_generation_models

        check_generation_models(cfg)
    weak = ", ".join(f"{m.label} ({m.mode})" for m in cfg.weak_members)
    print(
        f"ok: task {cfg.task.name}, weak {weak}, strong {cfg.strong.model} ({cfg.strong.mode}), "
        f"methods {[m.label for m in cfg.methods]}"
    )
    if cfg.preference is not None:
        print(f"    preference losses {[s.label for s in cfg.preference.losses]}")
    return 0


def _layers(args: argparse.Namespace) -> int:
    from weaklift.config import load_config
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
    "tasks": _tasks,
    "models": _models,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[weaklift] %(message)s", stream=sys.stderr)
    for noisy in ("transformers", "accelerate", "peft", "datasets", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return COMMANDS[args.command](args)
    except WeakliftError as err:
        print(f"weaklift: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
