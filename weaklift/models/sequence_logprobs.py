"""Summed log-probability of a response given its prompt: the quantity DPO, its evaluation and the
weak judges all read.

Prompt and response are tokenised separately (as TRL does), so the boundary is exact. Batches are
LEFT-padded with explicit position ids, so every response ends at the last position and the LM
head (262k columns for Gemma-3) runs only on the response positions (``logits_to_keep``), never on
the whole prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def tokenize_responses(
    tokenizer,
    prompts: list[str],
    responses: list[str],
    max_length: int,
    max_response_length: int,
    ended: Sequence[bool] | None = None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each prompt (with the tokenizer's special tokens) and response (none, + EOS).

    Prompt and response are tokenised separately (as TRL does), so the boundary is exact. A response
    longer than ``max_response_length`` is cut at its end (and gets no EOS, since it does not end
    there); so does one whose ``ended`` flag is false (a candidate cut at the decoding limit). A
    prompt keeps its LAST tokens so that prompt + response fit ``max_length``.
    """
    prompt_ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    lead = _leading_special(tokenizer)
    filler = next(t for t in (tokenizer.bos_token_id, eos, tokenizer.pad_token_id) if t is not None)
    prompts_out, responses_out = [], []
    ended = [True] * len(response_ids) if ended is None else list(ended)
    for prompt, response, ends in zip(prompt_ids, response_ids, ended, strict=True):
        response = list(response) + ([eos] if eos is not None and ends else [])
        response = response[:max_response_length]
        room = max(1, max_length - len(response))
        if len(prompt) > room:  # keep the special prefix (BOS) and the end of the prompt
            head = prompt[:lead] if lead < room else []
            prompt = head + prompt[len(prompt) - (room - len(head)) :]
        prompts_out.append(list(prompt) or [filler])  # the first response token needs a context
        responses_out.append(response)
    return prompts_out, responses_out


def _leading_special(tokenizer) -> int:
    """How many special tokens the tokenizer puts before a text (1 for a BOS, else 0)."""
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    return max(0, ids.index(plain[0])) if plain and plain[0] in ids else 0


def left_pad(
    sequences: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask and position_ids (B, T), every sequence ending at position T − 1."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)  # real tokens at 0, 1, ... whatever the padding
    return input_ids, mask, positions


def response_logprobs(
    model, prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log p(response | prompt) per row, (B,), and the number of response tokens, (B,).

    Gradients flow when the caller has them enabled (the policy) and not otherwise (reference).
    """
    device = next(model.parameters()).device
    sequences = [p + r for p, r in zip(prompt_ids, response_ids, strict=True)]
    input_ids, mask, positions = (t.to(device) for t in left_pad(sequences, pad_id))
    lengths = torch.tensor([len(r) for r in response_ids], device=device)  # (B,)
    keep = max(1, int(lengths.max()))  # response positions: the last `keep` (some rows: padding)
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
    in_response = from_end.unsqueeze(0) < lengths.unsqueeze(1)  # (B, keep)
    return (token_logps * in_response).sum(-1), lengths
