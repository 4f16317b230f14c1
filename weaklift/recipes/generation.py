"""Generation (Cui et al. 2024): weak generators' outputs as the strong student's targets.

splits → each weak generator on GT(weak_train) → its n-best of transfer, 1-best of test (and of
weak_holdout, which picks the best member) → ceiling on GT(transfer) → one student per method on
the weak outputs of transfer → (optional) preference optimisation of named students, judged by the
weak generators → task metric on test, CIs, PGR from the first and from the best member.
"""

from __future__ import annotations

from typing import Any

from weaklift.config import ExperimentConfig
from weaklift.methods.generation import GEN_METHODS, validate_gen_method_options
from weaklift.recipes.checks import (
    check_causal_lm_run,
    check_method_list,
    check_preference,
    check_single_run_options,
    language_models,
)
from weaklift.recipes.results import Results, save_results
from weaklift.recipes.rows import model_row
from weaklift.stages import StageContext, splits_stage
from weaklift.stages.gen_preference import optimise_student_preferences
from weaklift.stages.generation import (
    GenTrainRequest,
    check_generation_models,
    gen_evaluation_stage,
    gen_train_stage,
    generations_stage,
    ground_truth,
    student_targets,
    trained_source,
)
from weaklift.store import Store
from weaklift.tasks.generation import GenerationData

DEFAULTS: dict[str, Any] = {"seeds": 1, "controls": False}


def check(cfg: ExperimentConfig) -> None:
    """Generation methods; generators that train (lora/full); one seed, no controls; preference
    optimisation continues named students and is judged by the weak generators."""
    check_method_list(
        cfg,
        GEN_METHODS,
        validate_gen_method_options,
        example="methods=[sft,soft]",
        unknown="{name!r} is not a generation method (task "
        + repr(cfg.task.name)
        + " generates text)",
    )
    check_causal_lm_run(cfg, "generation", uses="generate text")
    if "probe" in cfg.train.model_fields_set:
        raise ValueError("train.probe: generation tasks train no probes; remove it")
    for where, model in language_models(cfg):
        if model.mode == "probe":
            raise ValueError(
                f"{where}.mode: a probe cannot generate text; set {where}.mode=lora (or full)"
            )
    check_single_run_options(cfg, "generation")
    pref = cfg.preference
    if pref is None:
        return
    check_preference(cfg, pref)
    if pref.weak_judges:
        raise ValueError(
            "preference.weak_judges: a generation task always uses its weak generators as judges; "
            "remove it"
        )
    labels = [spec.label for spec in cfg.methods]
    for i, label in enumerate(pref.students or []):
        if label not in labels:
            raise ValueError(
                f"preference.students.{i}: {label!r} is not one of this run's students {labels}; "
                "name a method label from `methods`"
            )


def run(cfg: ExperimentConfig, store: Store, data: GenerationData) -> Results:
    """Weak generators, ceiling, students (and their preference optimisation); results.json."""
    check_generation_models(cfg)
    ctx = StageContext(store=store, data=data, cfg=cfg)
    g = cfg.generation

    # 1. Disjoint splits of the task's examples.
    splits_stage(ctx)

    # 2. Each weak generator learns GT(weak_train), then decodes transfer (n-best), test (1-best)
    #    and, with several members, weak_holdout (1-best), which picks the best member.
    weak_models, transfer_nbest, weak_test, holdout = {}, {}, {}, {}
    for member in cfg.weak_members:
        trained = gen_train_stage(
            ctx,
            GenTrainRequest("weak_generator", member, "weak_train", ground_truth(ctx, "weak_train"),
                            ctx.splits_key),
        )  # fmt: skip
        weak_models[member.label] = (member, trained)
        transfer_nbest[member.label] = generations_stage(ctx, member, trained, "transfer", g.n_best)
        weak_test[member.label] = generations_stage(ctx, member, trained, "test", 1)
        if len(cfg.weak_members) > 1:  # the best member is chosen on weak-side GT, never on test
            holdout[member.label] = generations_stage(ctx, member, trained, "weak_holdout", 1)

    # 3. The ceiling: the strong model on GT(transfer), the same way.
    ceiling = gen_train_stage(
        ctx,
        GenTrainRequest("gen_ceiling", cfg.strong, "transfer", ground_truth(ctx, "transfer"),
                        ctx.splits_key),
    )  # fmt: skip
    ceiling_test = generations_stage(ctx, cfg.strong, ceiling, "test", 1)

    # 4. One student per method, on weak outputs of transfer only.
    students, trained_students = {}, {}
    for spec in cfg.methods:
        targets, targets_key = student_targets(ctx, spec, weak_models, transfer_nbest)
        trained_students[spec.label] = gen_train_stage(
            ctx,
            GenTrainRequest("gen_student", cfg.strong, "transfer", targets, targets_key, spec),
        )
        students[spec.label] = generations_stage(
            ctx, cfg.strong, trained_students[spec.label], "test", 1
        )

    # 5. Preference optimisation (optional): a student writes candidates for the transfer prompts,
    #    the weak generators judge them, best vs worst pairs train it further (one policy per loss).
    started_from, preference = {}, {}
    if cfg.preference is not None:
        judges = {label: trained_source(m, trained) for label, (m, trained) in weak_models.items()}
        for label in cfg.preference.students or list(trained_students):
            start = trained_source(cfg.strong, trained_students[label])
            outcome = optimise_student_preferences(ctx, cfg.preference, label, start, judges)
            students.update(outcome.generations)
            started_from.update({policy: label for policy in outcome.generations})
            preference[label] = outcome.report

    # 6. Task metric on test, bootstrap CIs, PGR (and each policy's gain over its start).
    metrics = gen_evaluation_stage(ctx, weak_test, ceiling_test, students, started_from, holdout)
    results = {
        "task": data.name,
        "kind": "generation",
        **metrics.json("metrics"),
        **({"preference": preference} if preference else {}),
        "models": {"weak": [m.label for m in cfg.weak_members], "strong": cfg.strong.model},
        "config": cfg.model_dump(mode="json"),
    }
    return save_results(cfg, data.name, results)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each weak generator (the first is the ``weak`` row), ceiling, students and policies; the
    score is the task's primary metric (e.g. slu_f1), every other metric its own column."""
    metric = results["primary"]
    members = results["weak_members"]
    first = next(iter(members))
    out = [model_row("weak", first, results["weak"], metric)]
    if len(members) > 1:
        out += [model_row("weak_member", k, m, metric) for k, m in members.items()]
    out.append(model_row("ceiling", "", results["ceiling"], metric))
    out += [model_row("student", k, s, metric) for k, s in results["students"].items()]
    return out
