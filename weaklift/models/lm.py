"""The one LM layer under every stage that runs a causal LM (lm-evaluation-harness's shape):

- ``PromptRule`` / ``encode_prompts``: the one prompt truncation rule (``generation.max_prompt_length``
  tokens, the side ``generation.prompt_keep`` names; a BOS prefix always stays), so SFT, decoding,
  candidates, judges and DPO see the same context for the same prompt;
- ``encode_responses``: prompt + response ids for scoring (response cut from its end, EOS only where
  the response ended);
- ``generate``: beam n-best or seeded sampling, batched by prompt length, LEFT-padded, with each
  output's token log-probs and whether it ended (wrote EOS);
- ``continuation_logprobs`` / ``response_logprobs``: teacher-forced log-probs of continuations,
  LEFT-padded with explicit position ids, the LM head only on the continuation positions.

Loading (with the model config's compute dtype) is ``weaklift.models.causal_lm.load_causal_lm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from weaklift import distributed

PromptKeep = Literal["end", "start"]


# --- prompts and responses ------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRule:
    """How every LM stage truncates a prompt: at most ``max_tokens`` tokens (special prefix
    included), keeping its ``end`` (what the reply follows) or its ``start``."""

    max_tokens: int
    keep: PromptKeep = "end"

    @classmethod
    def from_config(cls, generation: Any) -> PromptRule:
        """The rule of an experiment's ``generation`` block (the one place it is named)."""
        return cls(generation.max_prompt_length, generation.prompt_keep)

    def key(self) -> dict:
        return {"max_prompt_length": self.max_tokens, "prompt_keep": self.keep}


def encode_prompts(tokenizer: Any, prompts: Sequence[str], rule: PromptRule) -> list[list[int]]:
    """Token ids of each prompt (with the tokenizer's special tokens), truncated by ``rule``;
    never empty (the first continuation token needs a context)."""
    ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    lead = _leading_special(tokenizer)
    filler = next(
        t
        for t in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        if t is not None
    )
    out = []
    for prompt in ids:
        prompt = list(prompt)
        if len(prompt) > rule.max_tokens:
            head = prompt[: min(lead, rule.max_tokens)]
            room = rule.max_tokens - len(head)
            body = prompt[len(head) :]
            prompt = head + (body[len(body) - room :] if rule.keep == "end" else body[:room])
        out.append(prompt or [filler])
    return out


def _leading_special(tokenizer: Any) -> int:
    """How many special tokens the tokenizer puts before a text (1 for a BOS, else 0)."""
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    return max(0, ids.index(plain[0])) if plain and plain[0] in ids else 0


def encode_responses(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    rule: PromptRule,
    max_response_length: int,
    ended: Sequence[bool] | None = None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt ids (``encode_prompts``) and response ids (no special tokens, + EOS where it ended).

    Prompt and response are tokenised separately (as TRL does), so the boundary is exact. A
    response longer than ``max_response_length`` is cut (and gets no EOS: it does not end there);
    so is one whose ``ended`` flag is false (cut at the decoding limit): an EOS never written is
    never scored or trained.
    """
    eos = tokenizer.eos_token_id
    flags = [True] * len(responses) if ended is None else list(ended)
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    out = []
    for response, ends in zip(response_ids, flags, strict=True):
        response = list(response) + ([eos] if eos is not None and ends else [])
        out.append(response[:max_response_length])
    return encode_prompts(tokenizer, prompts, rule), out


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask and position_ids (B, T), every sequence ending at column T − 1."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)  # real tokens at 0, 1, ... whatever the padding
    return input_ids, mask, positions


def length_groups(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length (stable), cut into batches: similar lengths run together."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# --- generation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One output: its token ids (ending with EOS if it ended), their log-probs, its score."""

    token_ids: list[int]
    token_logprobs: list[float]
    score: float  # log-prob / length ** length_penalty (beam search: as the beams ranked it)
    ended: bool = True

    def to_json(self) -> dict:
        return {"ids": self.token_ids, "logprobs": self.token_logprobs, "score": self.score}

    @classmethod
    def from_json(cls, obj: dict) -> Candidate:
        return cls(list(obj["ids"]), [float(x) for x in obj["logprobs"]], float(obj["score"]))


@dataclass(frozen=True)
class Decoding:
    """How ``generate`` decodes: ``num`` outputs per prompt, by beam search (``beams`` wide,
    deterministic) or by sampling (seeded, ``temperature``, no top-k)."""

    num: int
    max_new_tokens: int
    sample: bool = False
    beams: int | None = None  # beam search width (default: num)
    temperature: float = 1.0
    length_penalty: float = 1.0
    batch_size: int = 8
    seed: int = 0


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[list[int]],
    how: Decoding,
    desc: str = "generate",
) -> list[list[Candidate]]:
    """``how.num`` candidates per prompt (beam search: best first), in the order of ``prompt_ids``.

    Prompts are decoded in batches of similar lengths, LEFT-padded so every row's next token sits
    in the last column. Token log-probs are ``compute_transition_scores`` of the model's own
    scores, so a beam's sum to its log-prob. Sampling draws from one generator seeded by
    ``how.seed``: reruns agree.
    """
    model.eval()
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    beams = 1 if how.sample else (how.beams or how.num)
    groups = length_groups([len(ids) for ids in prompt_ids], how.batch_size)

    def decode(group: list[int]) -> list[list[Candidate]]:
        """Each prompt of ``group``'s candidates."""
        input_ids, mask, _ = left_pad([prompt_ids[i] for i in group], pad)
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            num_beams=beams,
            num_return_sequences=how.num,
            max_new_tokens=how.max_new_tokens,
            length_penalty=how.length_penalty,
            do_sample=how.sample,
            temperature=how.temperature if how.sample else None,
            top_k=0 if how.sample else None,
            early_stopping=True if beams > 1 else None,
            output_scores=True,
            return_dict_in_generate=True,
            eos_token_id=eos,  # the stop that `ended` looks for
            pad_token_id=pad,
        )
        generated = out.sequences[:, input_ids.shape[1] :]  # (b · num, L)
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
        found: list[list[Candidate]] = [[] for _ in group]
        for row in range(generated.shape[0]):
            ids, logprobs = _until_eos(generated[row].tolist(), steps[row].tolist(), eos)
            score = (
                scores[row] if scores else sum(logprobs) / max(len(ids), 1) ** how.length_penalty
            )
            ended = bool(ids) and ids[-1] == eos
            found[row // how.num].append(Candidate(ids, logprobs, float(score), ended))
        bar.update(1 if how.sample else distributed.processes())
        return found

    bar = tqdm(total=len(groups), desc=desc, leave=False, disable=len(groups) < 3)
    torch.manual_seed(how.seed)
    with bar:
        if how.sample:  # one random stream through the groups in order: every process runs all
            decoded = [decode(group) for group in groups]
        else:  # beam search is deterministic: several processes share the groups
            decoded = distributed.map_sharded(groups, decode)
    results: list[list[Candidate]] = [[] for _ in prompt_ids]
    for group, found in zip(groups, decoded, strict=True):
        for i, candidates in zip(group, found, strict=True):
            results[i] = candidates
    return results


def _until_eos(ids: list[int], logprobs: list[float], eos: int) -> tuple[list[int], list[float]]:
    """Cut after the first EOS (what follows is padding)."""
    if eos in ids:
        end = ids.index(eos) + 1
        return ids[:end], logprobs[:end]
    return ids, logprobs[: len(ids)]


# --- scoring --------------------------------------------------------------------------------------


def continuation_logprobs(
    model: Any, prompt_ids: list[list[int]], continuation_ids: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each continuation token given prompt + earlier tokens, (B, K), right-aligned
    (row b's tokens in its last ``lengths[b]`` columns, 0 elsewhere), and the lengths, (B,).

    One LEFT-padded forward with explicit position ids; the LM head runs on the last K + 1
    positions only (``logits_to_keep``), never on the prompt. Logits are upcast to float32 before
    the log-softmax whatever the compute dtype. Gradients flow when the caller enables them.
    """
    device = next(model.parameters()).device
    sequences = [p + r for p, r in zip(prompt_ids, continuation_ids, strict=True)]
    input_ids, mask, positions = (t.to(device) for t in left_pad(sequences, pad_id))
    lengths = torch.tensor([len(r) for r in continuation_ids], device=device)  # (B,)
    keep = max(1, int(lengths.max()))  # continuation positions: the last `keep` (some: prompt/pad)
    logits = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        logits_to_keep=keep + 1,
        use_cache=False,
    ).logits[:, :-1]  # (B, keep, V): logits at t−1 predict the token at t
    targets = input_ids[:, -keep:]  # (B, keep)
    token_logps = torch.gather(logits.float().log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    from_end = torch.arange(keep - 1, -1, -1, device=device)  # (keep,) distance to the last token
    in_continuation = from_end.unsqueeze(0) < lengths.unsqueeze(1)  # (B, keep)
    return token_logps * in_continuation, lengths


def response_logprobs(
    model: Any, prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log p(response | prompt) per row, (B,), and the number of response tokens, (B,):
    what DPO, its evaluation and the weak judges read."""
    token_logps, lengths = continuation_logprobs(model, prompt_ids, response_ids, pad_id)
    return token_logps.sum(-1), lengths


@torch.no_grad()
def token_logprobs(
    model: Any,
    prompt_ids: list[list[int]],
    continuation_ids: list[list[int]],
    pad_id: int,
    batch_size: int = 8,
    desc: str = "score",
) -> list[list[float]]:
    """Per-token log-probs of every continuation (teacher forcing, no gradient), in input order;
    batched by length like ``generate``."""
    model.eval()
    out: list[list[float]] = [[] for _ in prompt_ids]
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, continuation_ids, strict=True)]
    groups = length_groups(lengths, batch_size)

    def score(group: list[int]) -> list[list[float]]:
        logps, counts = continuation_logprobs(
            model, [prompt_ids[i] for i in group], [continuation_ids[i] for i in group], pad_id
        )
        logps = logps.double().cpu()
        bar.update(distributed.processes())
        return [
            logps[row, logps.shape[1] - int(n) :].tolist() if int(n) else []
            for row, n in enumerate(counts)
        ]

    bar = tqdm(total=len(groups), desc=desc, leave=False, disable=len(groups) < 3)
    with bar:
        scored = distributed.map_sharded(groups, score)
    for group, values in zip(groups, scored, strict=True):
        for i, row in zip(group, values, strict=True):
            out[i] = row
    return out
