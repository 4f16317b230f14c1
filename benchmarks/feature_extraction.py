"""Throughput of probe-mode feature extraction (tokens/s, texts/s) for the zoo models.

Generates short true/false-style statements locally (no data download), loads each model once and
times ``extract_features`` for every combination of --batch-size, --threads and --attn. For
gemma3-270m it also times the naive way (causal-LM forward with the 262k-vocab head, all hidden
states, texts in their original order, every batch padded to the longest text of the set) on
fewer texts, for comparison.

    python benchmarks/feature_extraction.py
    python benchmarks/feature_extraction.py --models gemma3-270m --batch-size 8 16 32 --attn sdpa eager
    python benchmarks/feature_extraction.py --models gemma3-270m --dtypes float32 bfloat16 --naive-n 0
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import torch

from weaklift.models.features import DEFAULT_BATCH_SIZE, extract_features, tokenize
from weaklift.models.loading import LoadedBackbone, load_backbone
from weaklift.models.zoo import ZOO

SUBJECTS = [
    "the cat",
    "Paris",
    "the old bridge",
    "water",
    "my neighbour's dog",
    "the moon",
    "Berlin",
    "a small red car",
    "the capital of France",
    "the river that runs through the city",
]
VERBS = ["is", "was", "seems", "is not", "has always been", "will be"]
OBJECTS = [
    "blue",
    "larger than the sun",
    "a city in Germany",
    "made of cheese",
    "very quiet at night",
    "the tallest building in the world",
    "older than the pyramids",
    "frozen in winter",
]
TAILS = ["", "", " according to the book", " as everyone in the village knows",
         " which surprised the scientists who measured it twice last summer"]  # fmt: skip


def make_statements(n: int, seed: int = 0) -> list[str]:
    """Short statements of varied length (5 to ~30 tokens), deterministic for a seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}."
        for _ in range(n)
    ]


def count_tokens(backbone: LoadedBackbone, texts: list[str], max_length: int) -> int:
    return sum(len(ids) for ids in tokenize(backbone, texts, max_length))


def time_extraction(
    backbone: LoadedBackbone,
    texts: list[str],
    batch_size: int,
    max_length: int,
    repeats: int,
    all_layers: bool = False,
) -> float:
    """Best of ``repeats`` runs (like ``timeit``): other processes on a small machine only add time."""
    extract_features(backbone, texts[:4], "auto", max_length, 4, progress=False)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        extract_features(
            backbone, texts, "auto", max_length, batch_size, progress=False, all_layers=all_layers
        )
        best = min(best, time.perf_counter() - start)
    return best


def time_naive(name: str, texts: list[str], batch_size: int, max_length: int) -> tuple[float, int]:
    """Causal-LM forward, original order, every batch padded to the longest text of the whole set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ZOO[name].resolve()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    width = max(
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    )
    real_tokens = 0
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i : i + batch_size], padding="max_length", max_length=width,
                            truncation=True, return_tensors="pt")  # fmt: skip
            out = model(**enc, output_hidden_states=True)
            _ = out.hidden_states[-1][:, -1]  # left padding: last position is the last real token
            real_tokens += int(enc["attention_mask"].sum())
    return time.perf_counter() - start, real_tokens


def report(label: str, seconds: float, n_texts: int, n_tokens: int) -> None:
    print(
        f"{label:<52} {n_tokens / seconds:9.0f} tok/s {n_texts / seconds:8.1f} texts/s {seconds:8.2f} s"
    )


def bench_model(name: str, texts: list[str], args: argparse.Namespace) -> None:
    for dtype in args.dtypes:
        backbone = load_backbone(name, dtype, device="cpu")
        n_tokens = count_tokens(backbone, texts, args.max_length)
        print(
            f"\n{name} ({dtype}): {len(texts)} texts, {n_tokens} tokens "
            f"(mean {n_tokens / len(texts):.1f})"
        )
        bench_settings(backbone, texts, n_tokens, args)
        del backbone


def bench_settings(
    backbone: LoadedBackbone, texts: list[str], n_tokens: int, args: argparse.Namespace
) -> None:
    settings = itertools.product(args.attn, args.threads, args.batch_size, args.layers)
    for attn, threads, batch_size, layers in settings:
        backbone.model.set_attn_implementation(attn)
        torch.set_num_threads(threads)
        seconds = time_extraction(
            backbone, texts, batch_size, args.max_length, args.repeats, layers == "all"
        )
        report(
            f"  weaklift  attn={attn} threads={threads} batch={batch_size} layers={layers}",
            seconds,
            len(texts),
            n_tokens,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=list(ZOO), choices=list(ZOO), help="zoo models to time"
    )
    parser.add_argument("--n", type=int, default=512, help="number of statements")
    parser.add_argument(
        "--batch-size", type=int, nargs="+", default=[DEFAULT_BATCH_SIZE], help="batch sizes to try"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[torch.get_num_threads()], help="torch threads"
    )
    parser.add_argument(
        "--attn", nargs="+", default=["sdpa"], choices=["sdpa", "eager"], help="attention kernels"
    )
    parser.add_argument(
        "--layers",
        nargs="+",
        default=["last", "all"],
        choices=["last", "all"],
        help="pool the last hidden state only, or every layer's (what probe features store)",
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "bfloat16"],
        choices=["float32", "bfloat16", "float16", "auto"],
        help="compute dtypes to load each model in (weights straight in that dtype)",
    )
    parser.add_argument("--max-length", type=int, default=128, help="truncation length")
    parser.add_argument(
        "--repeats", type=int, default=1, help="time each setting this often, keep the best"
    )
    parser.add_argument(
        "--naive-n", type=int, default=128, help="texts for the naive gemma baseline (0: skip)"
    )
    args = parser.parse_args()

    texts = make_statements(args.n)
    for name in args.models:
        bench_model(name, texts, args)
    if args.naive_n and "gemma3-270m" in args.models:
        torch.set_num_threads(args.threads[0])
        subset = texts[: args.naive_n]
        seconds, real_tokens = time_naive(
            "gemma3-270m", subset, args.batch_size[0], args.max_length
        )
        report(
            f"  naive (LM head, unsorted, padded) batch={args.batch_size[0]}",
            seconds,
            len(subset),
            real_tokens,
        )


if __name__ == "__main__":
    main()
