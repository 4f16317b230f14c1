"""Generative finetuning (Burns et al. 2023, sec. 5.2.2): causal-LM training on unlabelled task text.

Before weak-to-strong training the strong backbone reads the task's inputs (no labels) with the
ordinary next-token loss, so task-relevant concepts become more salient in its representations.
The result is saved as a plain Hugging Face folder that every later stage loads like any model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM

from weaklift import distributed
from weaklift.config import GenftConfig
from weaklift.errors import WeakliftError
from weaklift.models.adapters import with_adapters
from weaklift.models.causal_lm import weights_dtype
from weaklift.models.device import compute_device, mixed_precision, resolve_dtype
from weaklift.models.features import collate
from weaklift.models.loading import is_decoder_config, resolve_source


def lm_loss(
    model, batches: list[tuple[torch.Tensor, torch.Tensor]], compute: torch.dtype = torch.float32
) -> float:
    """Mean next-token loss over the given batches (pad positions ignored), forwards in
    ``compute``."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for input_ids, mask in batches:
            with mixed_precision(input_ids.device, compute):
                out = model(
                    input_ids=input_ids, attention_mask=mask, labels=_labels(input_ids, mask)
                )
            tokens = int(mask[:, 1:].sum())
            total, count = total + float(out.loss) * tokens, count + tokens
    return total / max(count, 1)


def _labels(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return input_ids.masked_fill(mask == 0, -100)  # (B, T); -100 = ignored by the LM loss


def _token_ids(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Each text's ids (truncated); a text of one token predicts nothing and is dropped."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [seq for seq in ids if len(seq) > 1]


def _batches(
    tokenizer, texts: list[str], max_length: int, batch_size: int, device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ids = _token_ids(tokenizer, texts, max_length)
    batches = []
    for start in range(0, len(ids), batch_size):
        input_ids, mask = collate(ids[start : start + batch_size], tokenizer.pad_token_id)
        batches.append((input_ids.to(device), mask.to(device)))
    return batches


def generative_finetune(
    model_name: str, texts: list[str], cfg: GenftConfig, out: Path, seed: int, dtype: str = "auto"
) -> dict:
    """Finetune ``model_name`` with the causal-LM loss on ``texts``; save model + tokenizer in ``out``.

    Forwards run in the model config's compute dtype ``dtype``; full finetuning keeps float32
    master weights (bf16 weights would round most AdamW updates away), LoRA trains float32
    adapters on the base loaded in the compute dtype, merged into it when done."""
    from transformers import AutoConfig, AutoTokenizer

    source = resolve_source(model_name)
    if not is_decoder_config(AutoConfig.from_pretrained(source)):
        raise WeakliftError(
            f"generative finetuning needs a decoder; {model_name} is an encoder",
            "set strong.genft.enabled=false",
        )
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = compute_device()
    compute = resolve_dtype(dtype, device)
    weights = resolve_dtype(weights_dtype(cfg) or dtype, device)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=weights).to(device)
    if cfg.mode == "lora":
        model = with_adapters(model, cfg.lora, task_type="CAUSAL_LM")
    rng = np.random.default_rng(seed)
    texts = [texts[i] for i in rng.permutation(len(texts))[: cfg.max_texts]]
    held_out = max(1, len(texts) // 10)  # measure the LM loss on texts it does not train on
    train = _token_ids(tokenizer, texts[held_out:], cfg.max_length)
    evaluation = _batches(tokenizer, texts[:held_out], cfg.max_length, cfg.batch_size, device)
    before = lm_loss(model, evaluation, compute)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    starts = range(0, len(train), cfg.batch_size)
    with tqdm(total=cfg.epochs * len(starts), desc=f"genft {model_name}", leave=False) as bar:
        for _ in range(cfg.epochs):
            for start in starts:
                batch = train[start : start + cfg.batch_size]
                _step(model, optimizer, batch, tokenizer.pad_token_id, device, compute)
                bar.update(1)
    after = lm_loss(model, evaluation, compute)
    if cfg.mode == "lora":
        model = model.merge_and_unload()  # a plain model: later stages need no peft wrapper
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    if not (math.isfinite(before) and math.isfinite(after)):
        raise WeakliftError(
            f"generative finetuning of {model_name} diverged (loss {after})",
            "lower strong.genft.lr",
        )
    return {"lm_loss_before": before, "lm_loss_after": after, "texts": len(texts) - held_out}


def _step(model, optimizer, batch: list[list[int]], pad_id: int, device, compute) -> None:
    """One optimizer step on ``batch``. Under several processes each runs its share of the texts
    and the gradients are summed over processes, each share's mean loss weighted by its share
    of the batch's predicted tokens: the one-process step (the mean over the whole batch)."""
    tokens = sum(len(seq) - 1 for seq in batch)  # positions that predict a next token
    for rows in distributed.local_micro_batches(np.arange(len(batch)), len(batch)):
        if not len(rows):
            continue
        input_ids, mask = (t.to(device) for t in collate([batch[i] for i in rows], pad_id))
        with mixed_precision(device, compute):
            out = model(input_ids=input_ids, attention_mask=mask, labels=_labels(input_ids, mask))
        (out.loss * (int(mask[:, 1:].sum()) / tokens)).backward()
    distributed.sum_gradients(p for p in model.parameters() if p.requires_grad)
    optimizer.step()
    optimizer.zero_grad()
