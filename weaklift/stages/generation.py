"""Stages of generation tasks: train a causal LM on targets, decode splits, rescore candidates,
evaluate with the task metric. Each is a cached artifact keyed like every stage.

- ``gen_train_stage``: LoRA/full teacher forcing on (prompt, target) with a generation method.
- ``decode_stage`` (``generations_stage`` for a trained artifact): beam search on a split → n-best
  candidates with token and word log-probs.
- ``rescore_stage``: one weak member's word log-probs of every pooled candidate (``joint``).
- ``gen_evaluation_stage``: the task metric of every model on test, bootstrap CIs, PGR.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weaklift.alignment import WeakOutput, strong_targets, weak_output
from weaklift.config import ExperimentConfig, MethodSpec, ModelConfig
from weaklift.generation_metrics import (
    bootstrap_indices,
    metric_ci,
    metric_difference_ci,
    pgr_ci_from_stats,
)
from weaklift.methods.generation import GEN_METHODS, build_gen_method, gen_method_params
from weaklift.methods.generation.sft import Sft
from weaklift.metrics import pgr
from weaklift.models.causal_lm import (
    LMSource,
    add_lora,
    check_generator,
    load_causal_lm,
    load_trained,
    save_trained,
    weights_dtype,
)
from weaklift.models.device import resolve_dtype
from weaklift.models.lm import Decoding, PromptRule, encode_prompts, generate, token_logprobs
from weaklift.models.loading import weights_key
from weaklift.stages.context import StageContext
from weaklift.stages.training import loop_config, training_rows
from weaklift.store import Artifact, save_json, stable_hash
from weaklift.training.generation import GenLoopConfig, TargetSequence, train_generator

log = logging.getLogger("weaklift")

GEN_TRAIN_VERSION = 3  # 2: PromptRule, compute dtype, method versions; 3: float32 master weights
GENERATIONS_VERSION = 2  # 2: weak_output never scores an EOS that was not written; PromptRule
RESCORE_VERSION = 2  # 2: the shared left-padded scorer and PromptRule
GEN_EVAL_VERSION = 2  # 2: best member chosen on weak_holdout, never on test


def gen_loop_config(ctx: StageContext, model_cfg: ModelConfig) -> GenLoopConfig:
    """The finetuning loop the classifier stages build (same fields, same seed rule), plus how a
    weak word's log-prob is shared over strong tokens."""
    base = loop_config(ctx, model_cfg)
    return GenLoopConfig(
        epochs=base.epochs,
        batch_size=base.batch_size,
        micro_batch_size=base.micro_batch_size,
        lr=base.lr,
        weight_decay=base.weight_decay,
        seed=base.seed,
        share=ctx.cfg.generation.share,
        group_by_length=base.group_by_length,
    )


# --- training -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenTrainRequest:
    """One causal LM to train: on which split, against which outputs, with which method."""

    stage: str  # "weak_generator", "gen_ceiling" or "gen_student"
    model_cfg: ModelConfig
    train_split: str
    targets: list[list[WeakOutput]]  # per example of train_split: one output per member
    targets_key: str  # what the targets come from (splits key for ground truth)
    method: MethodSpec | None = None  # None: sft on ground truth


def ground_truth(ctx: StageContext, split: str) -> list[list[WeakOutput]]:
    return [[WeakOutput.ground_truth(ctx.data.targets[i])] for i in ctx.splits[split]]


def gen_train_stage(ctx: StageContext, req: GenTrainRequest) -> Artifact:
    """Train one causal LM and save its adapter (LoRA) or weights (full)."""
    g = ctx.cfg.generation
    params = {
        **weights_key(req.model_cfg.model, req.model_cfg.dtype),
        "mode": req.model_cfg.mode,
        "lora": req.model_cfg.lora.model_dump() if req.model_cfg.mode == "lora" else None,
        "loop": gen_loop_config(ctx, req.model_cfg).__dict__,
        "subset": req.model_cfg.subset,
        "train_split": req.train_split,
        **PromptRule.from_config(g).key(),
        "max_target_length": g.max_target_length,
        "method": gen_method_params(req.method) if req.method else "gt_sft",
    }
    upstream = {"splits": ctx.splits_key, "targets": req.targets_key}

    def compute(out: Path) -> dict:
        start = time.perf_counter()
        loop = gen_loop_config(ctx, req.model_cfg)
        loaded = load_causal_lm(
            req.model_cfg.model, weights_dtype(req.model_cfg) or req.model_cfg.dtype
        )
        add_lora(loaded, req.model_cfg, loop.seed)
        method = build_gen_method(req.method) if req.method else Sft()
        name = req.method.label if req.method else "ground truth"
        log.info(
            "training %s %s (%s) on %s of %s",
            req.stage,
            req.model_cfg.model,
            req.model_cfg.mode,
            name,
            req.train_split,
        )
        prompts = ctx.texts(req.train_split)
        rows = training_rows(len(prompts), req.model_cfg.subset, loop.seed)
        examples = [to_sequences(loaded.tokenizer, prompts[i], req.targets[i], ctx) for i in rows]
        history = train_generator(
            loaded.model,
            examples,
            method,
            loop,
            loaded.tokenizer.pad_token_id,
            desc=f"{req.stage} {req.method.label if req.method else req.model_cfg.label}",
            compute_dtype=resolve_dtype(req.model_cfg.dtype, loaded.device),
            shard=req.model_cfg.fsdp,
        )
        save_trained(loaded, out)
        return {
            "history": history.__dict__,
            "examples": len(examples),
            "seconds": round(time.perf_counter() - start, 1),
        }

    return ctx.store.get_or_compute(req.stage, GEN_TRAIN_VERSION, params, upstream, compute)


def to_sequences(
    tokenizer, prompt: str, outputs: list[WeakOutput], ctx: StageContext
) -> list[TargetSequence]:
    """The strong-side training sequences of one prompt (one per weak output)."""
    g = ctx.cfg.generation
    [prompt_ids] = encode_prompts(tokenizer, [prompt], PromptRule.from_config(g))
    sequences = []
    for output in outputs:
        ids, words = strong_targets(tokenizer, output, g.max_target_length)
        sequences.append(TargetSequence(prompt_ids, ids, words, list(output.word_logprobs)))
    return sequences


# --- decoding -------------------------------------------------------------------------------------


def generations_stage(
    ctx: StageContext, model_cfg: ModelConfig, trained: Artifact, split: str, n_best: int
) -> Artifact:
    """Beam search of a model trained by ``gen_train_stage`` on a split (see ``decode_stage``)."""
    return decode_stage(ctx, trained_source(model_cfg, trained), split, n_best)


def trained_source(model_cfg: ModelConfig, trained: Artifact) -> LMSource:
    """A model trained by ``gen_train_stage``, adapter merged, as an LMSource (decode, judge,
    or start preference optimisation from it)."""
    return LMSource(
        key=trained.key,
        loader=lambda dtype: load_trained(model_cfg.model, model_cfg, trained.path, dtype),
        name=model_cfg.label,
    )


def decode_stage(ctx: StageContext, source: LMSource, split: str, n_best: int) -> Artifact:
    """Beam search on a split: ``generations.json`` holds, per prompt, the n-best candidates with
    token ids, token log-probs, beam score, words and word log-probs."""
    g = ctx.cfg.generation
    rule = PromptRule.from_config(g)
    params = {
        "split": split,
        "n_best": n_best,
        **g.model_dump(include={"beams", "max_new_tokens", "length_penalty"}),
        **rule.key(),
    }

    def compute(out: Path) -> dict:
        start = time.perf_counter()
        loaded = source.load()
        log.info("decoding %s with %s (%d beams)", split, source.name, g.beams)
        how = Decoding(
            num=n_best,
            beams=g.beams,
            max_new_tokens=g.max_new_tokens,
            length_penalty=g.length_penalty,
            batch_size=g.batch_size,
        )
        prompt_ids = encode_prompts(loaded.tokenizer, ctx.texts(split), rule)
        nbest = generate(
            loaded.model, loaded.tokenizer, prompt_ids, how, desc=f"decode {split} {source.name}"
        )
        rows = [
            [
                {
                    **c.to_json(),
                    **weak_output(
                        loaded.tokenizer, c.token_ids, c.token_logprobs, loaded.eos_id
                    ).to_json(),
                }
                for c in candidates
            ]
            for candidates in nbest
        ]
        save_json(out, "generations", rows)
        return {
            "prompts": len(rows),
            "tokens": sum(len(c["ids"]) for r in rows for c in r),
            "seconds": round(time.perf_counter() - start, 1),
        }

    return ctx.store.get_or_compute(
        "generations", GENERATIONS_VERSION, params, {"model": source.key, "splits": ctx.splits_key},
        compute,
    )  # fmt: skip


def outputs_of(generations: Artifact) -> list[list[WeakOutput]]:
    """Per prompt, its candidates as WeakOutputs (best first)."""
    return [[WeakOutput.from_json(c) for c in row] for row in generations.json("generations")]


# --- rescoring for joint --------------------------------------------------------------------------


def rescore_stage(
    ctx: StageContext,
    model_cfg: ModelConfig,
    trained: Artifact,
    split: str,
    candidates: list[list[WeakOutput]],
    candidates_key: str,
) -> Artifact:
    """One member's word log-probs of every candidate (teacher forcing its own tokenisation)."""
    g = ctx.cfg.generation
    rule = PromptRule.from_config(g)
    params = {"split": split, **rule.key()}

    def compute(out: Path) -> dict:
        start = time.perf_counter()
        loaded = load_trained(model_cfg.model, model_cfg, trained.path)
        prompts, continuations, words, owners = [], [], [], []
        for prompt, row in zip(ctx.texts(split), candidates, strict=True):
            for output in row:
                ids, word_index = strong_targets(loaded.tokenizer, output, 10**6)
                prompts.append(prompt)
                continuations.append(ids)
                words.append(len(output.word_logprobs))
                owners.append(word_index)
        log.info("rescoring %d candidates with %s", len(prompts), model_cfg.label)
        token_lps = token_logprobs(
            loaded.model, encode_prompts(loaded.tokenizer, prompts, rule), continuations,
            loaded.tokenizer.pad_token_id, g.batch_size, desc=f"rescore {model_cfg.label}",
        )  # fmt: skip
        flat = []
        for lps, n_words, word_index in zip(token_lps, words, owners, strict=True):
            sums = [0.0] * n_words
            for w, lp in zip(word_index, lps, strict=True):
                sums[w] += lp
            flat.append({"word_logprobs": sums, "tokens": len(lps)})
        rows, k = [], 0
        for row in candidates:
            rows.append(flat[k : k + len(row)])
            k += len(row)
        save_json(out, "rescored", rows)
        return {"candidates": len(flat), "seconds": round(time.perf_counter() - start, 1)}

    return ctx.store.get_or_compute(
        "rescore", RESCORE_VERSION, params,
        {"model": trained.key, "candidates": candidates_key, "splits": ctx.splits_key}, compute,
    )  # fmt: skip


def pooled_candidates(member_outputs: list[list[list[WeakOutput]]]) -> list[list[WeakOutput]]:
    """Per prompt, every member's n-best pooled, first occurrence kept per (text, ended)."""
    pooled = []
    for per_member in zip(*member_outputs, strict=True):
        seen, row = set(), []
        for outputs in per_member:
            for output in outputs:
                if (output.text, output.ended) not in seen:
                    seen.add((output.text, output.ended))
                    row.append(output)
        pooled.append(row)
    return pooled


def joint_best(
    candidates: list[list[WeakOutput]], rescored: list[list[list[dict]]], length_penalty: float
) -> list[WeakOutput]:
    """Per prompt, the candidate with the best mean (over members) length-normalised log-prob;
    its word log-probs are the members' mean."""
    best = []
    for i, row in enumerate(candidates):
        members = [r[i] for r in rescored]  # M lists of per-candidate dicts

        def score(j: int, members=members) -> float:
            return float(
                np.mean(
                    [
                        sum(m[j]["word_logprobs"]) / max(m[j]["tokens"], 1) ** length_penalty
                        for m in members
                    ]
                )
            )

        j = max(range(len(row)), key=score)
        mean_lps = np.mean([m[j]["word_logprobs"] for m in members], axis=0).tolist()
        best.append(WeakOutput(row[j].words, mean_lps, row[j].ended))
    return best


# --- student targets ------------------------------------------------------------------------------


def student_targets(
    ctx: StageContext,
    spec: MethodSpec,
    weak_models: dict[str, tuple],
    transfer_nbest: dict[str, Artifact],
) -> tuple[list[list[WeakOutput]], str]:
    """Per transfer prompt, the weak output(s) a method learns from, and their cache key:
    the first member's 1-best; every member's 1-best (multi-weak); or the joint best candidate."""
    method = GEN_METHODS[spec.name]
    member_outputs = [outputs_of(art) for art in transfer_nbest.values()]
    keys = [art.key for art in transfer_nbest.values()]
    if method.joint_target:
        candidates = pooled_candidates(member_outputs)
        candidates_key = stable_hash(keys)
        rescored = [
            rescore_stage(ctx, member, trained, "transfer", candidates, candidates_key)
            for member, trained in weak_models.values()
        ]
        best = joint_best(
            candidates, [r.json("rescored") for r in rescored], ctx.cfg.generation.length_penalty
        )
        return [[b] for b in best], stable_hash(["joint", *(r.key for r in rescored)])
    if method.multi_weak:
        return [
            [outs[0] for outs in row] for row in zip(*member_outputs, strict=True)
        ], stable_hash(["members", *keys])
    return [[row[0]] for row in member_outputs[0]], stable_hash(["first", keys[0]])


def check_generation_models(cfg: ExperimentConfig) -> None:
    """Every model must be a causal LM with a fast tokenizer (reads configs/tokenizers only)."""
    for member in cfg.weak_members:
        check_generator(member.model, "weak")
    check_generator(cfg.strong.model, "strong")


# --- evaluation -----------------------------------------------------------------------------------


def predictions_of(generations: Artifact) -> list[str]:
    """The 1-best text of every prompt."""
    return [" ".join(row[0]["words"]) if row else "" for row in generations.json("generations")]


def best_member_on_holdout(ctx: StageContext, holdout: dict[str, Artifact]) -> dict[str, float]:
    """Each weak member's primary metric on weak_holdout (weak-side ground truth only), so the
    best member is chosen as classification chooses it: never on test."""
    metric = ctx.data.task_metric
    rows = ctx.splits["weak_holdout"]
    references = [ctx.data.targets[i] for i in rows]
    contexts = None if ctx.data.contexts is None else [ctx.data.contexts[i] for i in rows]
    return {
        label: metric.summarize(metric.stats(predictions_of(art), references, contexts))[
            metric.primary
        ]
        for label, art in holdout.items()
    }


def gen_evaluation_stage(
    ctx: StageContext,
    members: dict[str, Artifact],
    ceiling: Artifact,
    students: dict[str, Artifact],
    started_from: dict[str, str] | None = None,
    holdout: dict[str, Artifact] | None = None,
) -> Artifact:
    """Task metric + CI of every weak member, the ceiling and each student on test; PGR with a CI
    from the first member (the supervisor of single-target methods) and from the best member,
    the one whose 1-best outputs of weak_holdout (``holdout``, one per member) score highest.

    ``started_from`` maps a student that continued another (preference optimisation) to that
    student: it gets ``gain`` (its primary metric minus its start's) with a paired bootstrap CI.
    """
    params = {"bootstrap_samples": ctx.cfg.bootstrap_samples, "seed": ctx.cfg.seed}
    if started_from:
        params["started_from"] = started_from
    upstream = {
        "splits": ctx.splits_key,
        **{f"weak/{label}": art.key for label, art in members.items()},
        "ceiling": ceiling.key,
        **{f"student/{label}": art.key for label, art in students.items()},
        **{f"holdout/{label}": art.key for label, art in (holdout or {}).items()},
    }

    def compute(out: Path) -> dict:
        metric = ctx.data.task_metric
        references = [ctx.data.targets[i] for i in ctx.splits["test"]]
        all_contexts = ctx.data.contexts
        contexts = None if all_contexts is None else [all_contexts[i] for i in ctx.splits["test"]]
        idx = bootstrap_indices(len(references), ctx.cfg.bootstrap_samples, ctx.cfg.seed)
        stats = {
            name: metric.stats(predictions_of(art), references, contexts)
            for name, art in [
                *((f"weak/{k}", a) for k, a in members.items()),
                ("ceiling", ceiling),
                *((f"student/{k}", a) for k, a in students.items()),
            ]
        }

        def summary(name: str) -> dict:
            s = metric.summarize(stats[name])
            s[f"{metric.primary}_ci"] = list(metric_ci(metric, stats[name], idx, metric.primary))
            return s

        member_names = list(members)
        member_summaries = {label: summary(f"weak/{label}") for label in member_names}
        on_holdout = best_member_on_holdout(ctx, holdout) if holdout else {}
        best = max(member_names, key=lambda m: on_holdout.get(m, 0.0))  # one member: itself
        weak_name = f"weak/{member_names[0]}"
        ceiling_value = metric.summarize(stats["ceiling"])[metric.primary]
        student_results = {}
        for label in students:
            s = summary(f"student/{label}")
            for suffix, ref in (("", weak_name), ("_best_member", f"weak/{best}")):
                ref_value = metric.summarize(stats[ref])[metric.primary]
                s[f"pgr{suffix}"] = pgr(s[metric.primary], ref_value, ceiling_value)
                s[f"pgr{suffix}_ci"] = list(
                    pgr_ci_from_stats(
                        metric, stats[ref], stats[f"student/{label}"], stats["ceiling"], idx
                    )
                )
            if started_from and label in started_from:
                start = stats[f"student/{started_from[label]}"]
                s["started_from"] = started_from[label]
                s["gain"] = s[metric.primary] - metric.summarize(start)[metric.primary]
                s["gain_ci"] = list(
                    metric_difference_ci(metric, stats[f"student/{label}"], start, idx)
                )
            student_results[label] = s
        metrics = {
            "num_test": len(references),
            "metric": metric.name,
            "primary": metric.primary,
            "weak": member_summaries[member_names[0]],
            "weak_members": member_summaries,
            "best_member": best,
            "best_member_holdout": on_holdout,
            "ceiling": summary("ceiling"),
            "students": student_results,
            "examples": _examples(ctx, references, members, ceiling, students),
        }
        save_json(out, "metrics", metrics)
        return {}

    return ctx.store.get_or_compute("gen_evaluation", GEN_EVAL_VERSION, params, upstream, compute)


def _examples(ctx, references, members, ceiling, students, n: int = 3) -> list[dict]:
    """A few test outputs side by side, so a person can see what the models write."""
    rows = []
    first = next(iter(members.values()))
    outputs = {
        "weak": predictions_of(first),
        "ceiling": predictions_of(ceiling),
        **{f"student {k}": predictions_of(a) for k, a in students.items()},
    }
    prompts = ctx.texts("test")
    for i in range(min(n, len(references))):
        rows.append(
            {
                "prompt": prompts[i],
                "reference": references[i],
                **{k: v[i] for k, v in outputs.items()},
            }
        )
    return rows
