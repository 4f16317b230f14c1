"""Batched beam search with the KV cache: n-best outputs, sequence scores and per-token log-probs.

Prompts are sorted by token length and decoded in batches of similar lengths (little padding),
LEFT-padded so every row's next token sits in the last column; results come back in input order.
Per-token log-probs are ``compute_transition_scores`` over the beam's own scores (log-softmax of the
model's logits), so they sum to the output's log-prob. Decoding is greedy-deterministic: no sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Candidate:
    """One output: its token ids (ending with EOS if it ended), their log-probs, its beam score."""

    token_ids: list[int]
    token_logprobs: list[float]
    score: float  # log-prob / length ** length_penalty, as the beam search ranked it

    def to_json(self) -> dict:
        return {"ids": self.token_ids, "logprobs": self.token_logprobs, "score": self.score}

    @classmethod
    def from_json(cls, obj: dict) -> Candidate:
        return cls(list(obj["ids"]), [float(x) for x in obj["logprobs"]], float(obj["score"]))


def length_groups(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length (stable), cut into batches: similar lengths decode together."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def generate_nbest(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    beams: int,
    n_best: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    batch_size: int = 8,
    max_prompt_length: int = 128,
    desc: str = "generate",
) -> list[list[Candidate]]:
    """``n_best`` candidates per prompt, best first, in the order of ``prompts``."""
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    encoded = tokenizer(prompts, truncation=True, max_length=max_prompt_length)["input_ids"]
    results: list[list[Candidate]] = [[] for _ in prompts]
    groups = length_groups([len(ids) for ids in encoded], batch_size)
    for group in tqdm(groups, desc=desc, leave=False, disable=len(groups) < 3):
        input_ids, mask = _left_pad([encoded[i] for i in group], tokenizer.pad_token_id)
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            num_beams=beams,
            num_return_sequences=n_best,
            max_new_tokens=max_new_tokens,
            length_penalty=length_penalty,
            do_sample=False,
            early_stopping=True,
            output_scores=True,
            return_dict_in_generate=True,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
        )
        generated = out.sequences[:, input_ids.shape[1] :]  # (B * n, L)
        if beams > 1:
            steps = model.compute_transition_scores(
                out.sequences, out.scores, out.beam_indices, normalize_logits=False
            )
            scores = out.sequences_scores.tolist()
        else:
            steps = model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            )
            scores = None
        for row in range(generated.shape[0]):
            ids, logprobs = _until_eos(generated[row].tolist(), steps[row].tolist(), eos)
            score = scores[row] if scores else sum(logprobs) / max(len(ids), 1) ** length_penalty
            results[group[row // n_best]].append(Candidate(ids, logprobs, float(score)))
    return results


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


def _until_eos(ids: list[int], logprobs: list[float], eos: int) -> tuple[list[int], list[float]]:
    """Cut after the first EOS (what follows is padding)."""
    if eos in ids:
        end = ids.index(eos) + 1
        return ids[:end], logprobs[:end]
    return ids, logprobs[: len(ids)]
