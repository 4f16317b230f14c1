"""Pairs (preference optimisation from a file of chosen/rejected replies; Cui et al. 2024's DPO).

pairs → splits → one policy per loss (DPO/cDPO/IPO) on the transfer pairs (policy = the strong LM,
reference = its start) → with ``preference.weak_judges``: the policy's own candidates for the
transfer prompts, judged by the weak members zero-shot, train one more policy per loss, whose PGR
is measured against the policy trained on the ground-truth pairs → test pairs: the reference's
preference (before) vs each policy's (after).
"""

from __future__ import annotations

from typing import Any

from weaklift.config import ExperimentConfig, PreferenceConfig
from weaklift.recipes.checks import (
    check_causal_lm_run,
    check_policy_trains,
    check_preference,
    check_single_run_options,
)
from weaklift.recipes.results import Results, save_results
from weaklift.recipes.rows import model_row
from weaklift.stages import StageContext, splits_stage
from weaklift.stages.judges import judge_scores_stage, judged_pairs, pair_candidates_stage
from weaklift.stages.preference_opt import (
    LMSource,
    WeakComparison,
    file_pairs,
    preference_evaluation_stage,
    preference_train_stage,
)
from weaklift.store import Store
from weaklift.tasks import PairsData

DEFAULTS: dict[str, Any] = {"seeds": 1, "controls": False}


def check(cfg: ExperimentConfig) -> None:
    """A policy that trains; causal LMs and no classifier options; valid losses; one seed, no
    controls."""
    check_policy_trains(cfg)
    check_single_run_options(cfg, "pairs")
    ignored = sorted(cfg.train.model_fields_set - {"select"})
    if ignored:
        raise ValueError(
            f"train.{ignored[0]}: pair runs train with preference.train (lr, epochs, batch_size, "
            f"...); set those and remove train.{ignored[0]}"
        )
    if "methods" in cfg.model_fields_set:
        raise ValueError(
            "methods: pair runs train one policy per preference loss; set preference.losses "
            "(e.g. preference.losses=[dpo, cdpo]) and remove methods"
        )
    pref = cfg.preference or PreferenceConfig()
    check_causal_lm_run(cfg, "pairs", uses="judge replies", weak=pref.weak_judges)
    check_preference(cfg, pref)
    if pref.students is not None:
        raise ValueError(
            "preference.students: only generation tasks train students before preference "
            "optimisation; remove it"
        )


def run(cfg: ExperimentConfig, store: Store, data: PairsData) -> Results:
    """One policy per loss (and per loss on weak-judged pairs); the test pairs before and after."""
    ctx = StageContext(store=store, data=data, cfg=cfg)
    splits_stage(ctx)  # the pairs of weak_train and val are not used
    train_pairs, test_pairs = file_pairs(ctx, "transfer"), file_pairs(ctx, "test")
    losses = (cfg.preference or PreferenceConfig()).losses
    start = LMSource.from_config(cfg.strong)
    policies = {
        spec.label: preference_train_stage(ctx, start, cfg.strong, train_pairs, spec)
        for spec in losses
    }
    weak = None
    if (cfg.preference or PreferenceConfig()).weak_judges:
        # Weak-to-strong: the policy's own candidates for the transfer prompts, judged by the weak
        # members (never the file's replies), become the student's pairs; GT pairs give the ceiling.
        judges = {m.label: LMSource.from_config(m) for m in cfg.weak_members}
        judged, weak_pairs = judged_pairs(ctx, start, judges, train_pairs.prompts, train_pairs.key)
        ceiling_of = {}
        for spec in losses:
            label = f"{spec.label} · weak judges"
            policies[label] = preference_train_stage(ctx, start, cfg.strong, weak_pairs, spec)
            ceiling_of[label] = spec.label
        on_test = pair_candidates_stage(ctx, test_pairs)
        scores = {label: judge_scores_stage(ctx, j, on_test) for label, j in judges.items()}
        weak = WeakComparison(scores, judged.meta["weights"], ceiling_of)
        judged_summary = {k: judged.meta[k] for k in ("pairs", "prompts", "dropped", "weights")}
    metrics = preference_evaluation_stage(ctx, start, policies, test_pairs, weak).json("metrics")
    if weak is not None:
        metrics["judged_pairs"] = judged_summary
    results = {
        "task": data.name,
        "kind": "pairs",
        **metrics,
        "num_train_pairs": len(train_pairs),
        "models": {
            "weak": [m.label for m in cfg.weak_members] if weak is not None else [],
            "strong": cfg.strong.model,
            "policy": cfg.strong.model,
            "mode": cfg.strong.mode,
        },
        "config": cfg.model_dump(mode="json"),
    }
    return save_results(cfg, data.name, results)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The reference (the policy before training), the weak judges, and each policy: trained on
    the file's pairs (role ``ceiling`` when weak judges are compared with it, else ``policy``)
    or on weak-judged pairs (role ``student``, with its PGR). The score is the share of test
    pairs whose chosen reply the model finds likelier."""
    weak = results.get("weak")
    out = [model_row("reference", "", results["reference"])]
    if weak is not None:
        out.append(model_row("weak", " + ".join(weak["judges"]), weak))
    ceilings = {m["ceiling"] for m in results["policies"].values() if "ceiling" in m}
    for label, block in results["policies"].items():
        role = "student" if "ceiling" in block else "ceiling" if label in ceilings else "policy"
        out.append(model_row(role, label, block))
    return out
