"""Decoding throughput (generated tokens/s) of a zoo causal LM: batched vs one prompt at a time.

Prompts are SLURP utterances in the task's prompt format (``--data``, default the shared release
files), decoded by ``weaklift.models.lm.generate`` (beam search with the KV cache,
prompts grouped by length, left padding). "Generated tokens" are the tokens of the returned outputs
up to and including EOS. Run it under the machine-wide lock:

    /work/heavy env OMP_NUM_THREADS=2 python benchmarks/decoding.py
    python benchmarks/decoding.py --model smollm2-135m --prompts 32 --beams 1 4 --batch-size 8 16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from weaklift.models.causal_lm import load_causal_lm
from weaklift.models.lm import Decoding, PromptRule, encode_prompts, generate
from weaklift.tasks.generation import slurp_example


def slurp_prompts(folder: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in (folder / "devel.jsonl").open() if line.strip()]
    return [slurp_example(row)[0] for row in rows[:n]]


def time_decoding(lm, prompts: list[str], beams: int, batch_size: int, max_new: int) -> dict:
    start = time.perf_counter()
    how = Decoding(num=1, beams=beams, max_new_tokens=max_new, batch_size=batch_size)
    prompt_ids = encode_prompts(lm.tokenizer, prompts, PromptRule(128))
    outputs = generate(
        lm.model, lm.tokenizer, prompt_ids, how, desc=f"beams {beams} batch {batch_size}"
    )
    seconds = time.perf_counter() - start
    tokens = sum(len(row[0].token_ids) for row in outputs)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/slurp"))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    torch.manual_seed(0)
    prompts = slurp_prompts(args.data, args.prompts)
    lm = load_causal_lm(args.model)
    lm.tokenizer.padding_side = "left"
    time_decoding(lm, prompts[:2], 1, 2, 4)  # warm-up (allocations, kernels)
    print(
        f"model {args.model} · {len(prompts)} SLURP prompts · max {args.max_new_tokens} new tokens"
        f" · {torch.get_num_threads()} threads · device {lm.device}"
    )
    print(f"{'beams':>5} {'batch':>5} {'seconds':>8} {'tokens':>7} {'tokens/s':>9} {'speed-up':>8}")
    for beams in args.beams:
        single = time_decoding(lm, prompts, beams, 1, args.max_new_tokens)
        rows = [(1, single)] + [
            (b, time_decoding(lm, prompts, beams, b, args.max_new_tokens)) for b in args.batch_size
        ]
        for batch, r in rows:
            print(
                f"{beams:>5} {batch:>5} {r['seconds']:>8.1f} {r['tokens']:>7} "
                f"{r['tokens_per_s']:>9.1f} {r['tokens_per_s'] / single['tokens_per_s']:>7.2f}x"
            )


if __name__ == "__main__":
    main()
