"""Stages of preference optimisation: pairs → DPO/cDPO/IPO policy → held-out pair metrics.

The policy is the strong causal LM (``strong.model``, LoRA or full); its reference is the same
model before training: with LoRA the one loaded base with its adapters switched off, with full
finetuning the start loaded once more from disk, frozen, in the compute dtype (never a deep copy). Pairs come from a task's file (``file_pairs``) or from weak judges'
verdicts on generated candidates (``weaklift.stages.judges``); either way they carry a key, so a
trained policy is reused whenever the same pairs, model, loss and loop settings come back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from weaklift.config import MethodSpec, ModelConfig, PreferenceConfig
from weaklift.errors import WeakliftError
from weaklift.methods import build_preference_loss, preference_loss_params
from weaklift.metrics import (
    implicit_reward_summary,
    mean_bootstrap_ci,
    pairwise_preference_summary,
    pgr,
    pgr_bootstrap_ci,
)
from weaklift.models.adapters import apply_checkpointing, quiet_peft, with_adapters
from weaklift.models.causal_lm import (
    LMSource,
    LoadedLM,
    load_causal_lm,
    weights_dtype,
    whole_state,
)
from weaklift.models.device import dtype_name, resolve_dtype
from weaklift.models.lm import PromptRule, encode_responses
from weaklift.stages.context import StageContext
from weaklift.stages.training import model_seed
from weaklift.store import Artifact, save_json, stable_hash
from weaklift.training.preference import (
    PolicyWithReference,
    PreferenceLoopConfig,
    TokenizedPairs,
    score_pairs,
    train_preference,
)

log = logging.getLogger("weaklift")

PREFERENCE_TRAIN_VERSION = 3  # 2: PromptRule, clipping, linear decay; 3: float32 master weights
PREFERENCE_EVAL_VERSION = 2  # 2: PromptRule


@dataclass(frozen=True)
class Pairs:
    """Preference pairs as texts, and the key of what produced them (for the cache keys).

    ``chosen_ended`` / ``rejected_ended``: whether each reply ended (gets EOS); None = all did.
    A candidate the policy wrote up to the decoding limit did not, and is trained as written.
    """

    prompts: list[str]
    chosen: list[str]
    rejected: list[str]
    key: str
    chosen_ended: list[bool] | None = None
    rejected_ended: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.prompts)


def preference_config(ctx: StageContext) -> PreferenceConfig:
    """The experiment's preference block; a pair task without one runs plain DPO."""
    return ctx.cfg.preference or PreferenceConfig()


def file_pairs(ctx: StageContext, split: str) -> Pairs:
    """The pairs a pair task (``PairsData``) holds in one split."""
    rows = ctx.splits[split]
    return Pairs(
        prompts=[ctx.data.prompts[i] for i in rows],
        chosen=[ctx.data.chosen[i] for i in rows],
        rejected=[ctx.data.rejected[i] for i in rows],
        key=stable_hash({"splits": ctx.splits_key, "split": split}),
    )


def tokenize_pairs(
    tokenizer, pairs: Pairs, pref: PreferenceConfig, rule: PromptRule
) -> TokenizedPairs:
    """Prompt ids by the one ``PromptRule``; chosen and rejected ids cut at max_response_length."""
    limit = pref.train.max_response_length
    prompt_ids, chosen_ids = encode_responses(
        tokenizer, pairs.prompts, pairs.chosen, rule, limit, pairs.chosen_ended
    )
    _, rejected_ids = encode_responses(
        tokenizer, pairs.prompts, pairs.rejected, rule, limit, pairs.rejected_ended
    )
    return TokenizedPairs(prompt_ids, chosen_ids, rejected_ids)


def preference_train_stage(
    ctx: StageContext, start: LMSource, policy_cfg: ModelConfig, pairs: Pairs, spec: MethodSpec
) -> Artifact:
    """Optimise the policy, starting from ``start``, on ``pairs`` with one loss (``policy_cfg``: mode,
    LoRA settings, seed); saves the LoRA adapter or the full model."""
    if len(pairs) == 0:
        raise WeakliftError(
            f"preference.losses: no pairs to train {spec.label} on (every prompt's candidates "
            "tied or were dropped, or the split holds no pairs)",
            "judged pairs: raise preference.candidates.num or .temperature, or lower "
            "preference.judges.min_margin; a pairs file: raise split.transfer",
        )
    pref = preference_config(ctx)
    rule = PromptRule.from_config(ctx.cfg.generation)
    params = {
        "model": start.key,
        "mode": policy_cfg.mode,
        "lora": policy_cfg.lora.model_dump() if policy_cfg.mode == "lora" else None,
        "train": pref.train.model_dump(),
        **rule.key(),
        "loss": preference_loss_params(spec),
        "seed": model_seed(ctx, policy_cfg),
    }

    def compute(out: Path) -> dict:
        started = time.perf_counter()
        lm = start.load(weights_dtype(policy_cfg))
        torch.manual_seed(params["seed"])
        lora = policy_cfg.mode == "lora"
        apply_checkpointing(lm.model, policy_cfg)
        if lora:
            model = with_adapters(lm.model, policy_cfg.lora, task_type="CAUSAL_LM")
        else:
            model = lm.model.requires_grad_(True)
        reference = None if lora else start.load().model  # the frozen start, from disk
        log.info(
            "preference optimisation %s (%s) with %s on %d pairs",
            start.name,
            policy_cfg.mode,
            spec.label,
            len(pairs),
        )
        compute = resolve_dtype(policy_cfg.dtype, lm.device)
        policy = PolicyWithReference(model, lm.tokenizer.pad_token_id, reference, compute)
        loop = PreferenceLoopConfig(
            epochs=pref.train.epochs,
            batch_size=pref.train.batch_size,
            micro_batch_size=pref.train.micro_batch_size,
            lr=pref.train.lr,
            weight_decay=pref.train.weight_decay,
            seed=params["seed"],
            group_by_length=pref.train.group_by_length,
        )
        loss_fn = build_preference_loss(spec)
        tokenized = tokenize_pairs(lm.tokenizer, pairs, pref, rule)
        history = train_preference(policy, tokenized, loss_fn, loop, spec.label, policy_cfg.fsdp)
        tail = slice(-max(1, len(history.loss) // 4), None)  # the last quarter of the steps
        log.info(
            "%s: loss %.3f → %.3f; last quarter: reward accuracy %.2f, margin %.3f",
            spec.label,
            history.loss[0],
            history.loss[-1],
            float(np.mean(history.reward_accuracy[tail])),
            float(np.mean(history.reward_margin[tail])),
        )
        if policy_cfg.mode == "lora":
            model.save_pretrained(out / "adapter")
        else:
            model.save_pretrained(out / "model", state_dict=whole_state(model))
            lm.tokenizer.save_pretrained(out / "model")
        return {
            "history": history.__dict__,
            "pairs": len(pairs),
            "beta": loss_fn.beta,
            "seconds": round(time.perf_counter() - started, 1),
        }

    return ctx.store.get_or_compute(
        "preference_policy", PREFERENCE_TRAIN_VERSION, params, {"pairs": pairs.key}, compute
    )


def load_policy(base: LoadedLM, policy: Artifact, dtype: str = "auto") -> torch.nn.Module:
    """The trained policy of a ``preference_policy`` artifact. LoRA: its adapter injected into
    ``base.model`` itself (no copy; ``disable_adapter()`` gives the base back, ``unload()`` removes
    it); full: its saved weights, loaded in ``dtype``."""
    if (policy.path / "adapter").is_dir():
        from peft import PeftModel

        with quiet_peft():
            return PeftModel.from_pretrained(base.model, str(policy.path / "adapter"))
    return load_causal_lm(str(policy.path / "model"), dtype, device=str(base.model.device)).model


@contextmanager
def policy_on(base: LoadedLM, policy: Artifact) -> Iterator[torch.nn.Module]:
    """``load_policy`` for one use: afterwards ``base.model`` is the pristine base again."""
    model = load_policy(base, policy, _dtype_of(base))
    try:
        yield model
    finally:
        if hasattr(model, "unload"):
            base.model = model.unload()
        del model


def _dtype_of(lm: LoadedLM) -> str:
    """The compute dtype ``lm`` was loaded in (a full policy loads its weights the same way)."""
    return dtype_name(next(lm.model.parameters()).dtype)


def policy_source(start: LMSource, policy: Artifact, name: str | None = None) -> LMSource:
    """A trained policy as an LMSource (adapter merged), e.g. to generate with it on test;
    ``name`` is what logs and progress bars call it (default: the start and the policy's key)."""
    name = name or f"{start.name} after {policy.key}"

    def load(dtype: str | None) -> LoadedLM:
        base = start.load(dtype)
        model = load_policy(base, policy, _dtype_of(base))
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        return LoadedLM(tokenizer=base.tokenizer, model=model.eval(), name=name)

    return LMSource(key=policy.key, loader=load, name=name)


@dataclass(frozen=True)
class WeakComparison:
    """The weak judges' own verdict on the test pairs, and which policy is each student's ceiling.

    ``scores``: each judge's ``judge_scores`` of the test pairs as [chosen, rejected] candidates;
    ``weights``: the judge weights the pairs were built with; ``ceiling_of``: student policy label
    (trained on judged pairs) → ceiling policy label (same loss, ground-truth pairs).
    """

    scores: dict[str, Artifact]
    weights: dict[str, float]
    ceiling_of: dict[str, str]

    def correct(self) -> np.ndarray:
        """(N,) whether the weighted judges score the chosen reply above the rejected one."""
        per_judge = np.array([a.json("scores") for a in self.scores.values()])  # (M, N, 2)
        weights = np.array([self.weights[label] for label in self.scores])  # (M,)
        combined = np.einsum("m,mnk->nk", weights, per_judge)
        return combined[:, 0] > combined[:, 1]


def preference_evaluation_stage(
    ctx: StageContext,
    start: LMSource,
    policies: dict[str, Artifact],
    pairs: Pairs,
    weak: WeakComparison | None = None,
) -> Artifact:
    """Held-out pairs: does the model prefer the chosen reply, before (the reference) and after each
    loss? Plus each policy's implicit-reward accuracy and margin against the reference; with
    ``weak``, the judges' accuracy and each student's PGR on implicit-reward accuracy."""
    pref = preference_config(ctx)
    rule = PromptRule.from_config(ctx.cfg.generation)
    params = {
        "model": start.key,
        **rule.key(),
        "max_response_length": pref.train.max_response_length,
        "bootstrap_samples": ctx.cfg.bootstrap_samples,
        "seed": ctx.cfg.seed,
        "weak": None if weak is None else {"weights": weak.weights, "ceiling_of": weak.ceiling_of},
    }
    upstream = {"pairs": pairs.key, **{f"policy/{k}": a.key for k, a in policies.items()}}
    if weak is not None:
        upstream.update({f"judge/{k}": a.key for k, a in weak.scores.items()})

    def compute(out: Path) -> dict:
        started = time.perf_counter()
        base = start.load()
        tokenized = tokenize_pairs(base.tokenizer, pairs, pref, rule)
        pad = base.tokenizer.pad_token_id
        samples, seed = ctx.cfg.bootstrap_samples, ctx.cfg.seed
        reference = score_pairs(base.model, tokenized, pad)
        metrics = {
            "num_pairs": len(pairs),
            "reference": pairwise_preference_summary(**reference, samples=samples, seed=seed),
            "policies": {},
        }
        reward_correct = {}
        for label, artifact in policies.items():
            with policy_on(base, artifact) as model:
                scores = score_pairs(model, tokenized, pad)
            margins = (scores["chosen"] - reference["chosen"]) - (
                scores["rejected"] - reference["rejected"]
            )
            reward_correct[label] = margins > 0
            metrics["policies"][label] = {
                **pairwise_preference_summary(**scores, samples=samples, seed=seed),
                **implicit_reward_summary(margins, artifact.meta["beta"], samples, seed),
                "train_seconds": artifact.meta["seconds"],
                "train_loss_first_last": [
                    artifact.meta["history"]["loss"][0],
                    artifact.meta["history"]["loss"][-1],
                ],
            }
        if weak is not None:
            metrics["weak"] = _weak_and_pgr(
                weak, reward_correct, metrics["policies"], samples, seed
            )
        save_json(out, "metrics", metrics)
        return {"seconds": round(time.perf_counter() - started, 1)}

    return ctx.store.get_or_compute(
        "preference_evaluation", PREFERENCE_EVAL_VERSION, params, upstream, compute
    )


def _weak_and_pgr(
    weak: WeakComparison,
    reward_correct: dict[str, np.ndarray],
    policy_metrics: dict[str, dict],
    samples: int,
    seed: int,
) -> dict:
    """The judges' test accuracy; PGR = (student − weak) / (ceiling − weak) on reward accuracy,
    written into each student's metrics, with a bootstrap CI over test pairs."""
    weak_correct = weak.correct()
    weak_accuracy = float(weak_correct.mean())
    for student, ceiling in weak.ceiling_of.items():
        policy_metrics[student]["ceiling"] = ceiling
        policy_metrics[student]["pgr"] = pgr(
            float(reward_correct[student].mean()),
            weak_accuracy,
            float(reward_correct[ceiling].mean()),
        )
        policy_metrics[student]["pgr_ci"] = list(
            pgr_bootstrap_ci(
                weak_correct, reward_correct[student], reward_correct[ceiling], samples, seed
            )
        )
    return {
        "judges": list(weak.scores),
        "weights": weak.weights,
        "accuracy": weak_accuracy,
        "accuracy_ci": list(mean_bootstrap_ci(weak_correct, samples, seed)),
    }
