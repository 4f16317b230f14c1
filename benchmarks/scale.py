"""Throughput and peak memory of one model shape in each compute dtype, through weaklift's own code.

For a model (a zoo name, a local folder, or a named random-init shape built from a config, no
download) and each dtype, five measurements, each in a fresh subprocess so its peak memory is its
own (RSS on CPU; ``torch.cuda.max_memory_allocated`` on a GPU):

- extraction: probe features of every layer (``extract_features``), tokens/s;
- lora step / full step: optimizer steps of a classifier (``train_classifier``), tokens/s;
- scoring: teacher-forced log-probs of continuations (``token_logprobs``), tokens/s;
- decoding: batched greedy decoding (``generate``), generated tokens/s.

    python benchmarks/scale.py --shape llama-0.5b
    python benchmarks/scale.py --shape llama-1b --dtypes bfloat16 --only extraction lora
    python benchmarks/scale.py --shape llama-0.5b --save /tmp/llama-0.5b   # a folder to run on
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Random-init llama shapes (SmolLM2's tokenizer, vocabulary 49,152; tied embeddings).
SHAPES: dict[str, dict] = {
    "llama-tiny": dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                       num_attention_heads=4, num_key_value_heads=4),
    "llama-0.5b": dict(hidden_size=1280, num_hidden_layers=24, intermediate_size=2688,
                       num_attention_heads=20, num_key_value_heads=20),
    "llama-1b": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192,
                     num_attention_heads=32, num_key_value_heads=8),
}  # fmt: skip
VOCABULARY = [
    "the",
    "a",
    "river",
    "city",
    "old",
    "cat",
    "runs",
    "quickly",
    "over",
    "bright",
    "cold",
    "stone",
    "water",
    "moon",
]
MEASUREMENTS = ("extraction", "lora", "full", "scoring", "decoding")
TOKENIZER_FROM = "smollm2-135m"


def build_shape(name: str, folder: Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Save a random-init llama of shape ``name`` (weights in ``dtype``) with SmolLM2's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = shape_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **SHAPES[name],
    )
    torch.manual_seed(0)
    with torch.device("meta"):
        LlamaForCausalLM(config)  # fail fast on a bad shape before allocating anything
    model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def shape_tokenizer():
    """SmolLM2's tokenizer where the zoo has it; else (a GPU machine with only the repo) a local
    word-level tokenizer of the same vocabulary size, so every shape has the same parameters."""
    from transformers import AutoTokenizer

    from weaklift.errors import WeakliftError
    from weaklift.models.zoo import ZOO

    try:
        return AutoTokenizer.from_pretrained(ZOO[TOKENIZER_FROM].resolve())
    except WeakliftError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.tiny_models import SPECIALS, _tokenizer

        words = sorted(set(VOCABULARY)) + [f"w{i}" for i in range(49_152)]
        vocab = {w: i for i, w in enumerate(SPECIALS + words[: 49_152 - len(SPECIALS)])}
        return _tokenizer(vocab, decoder=True, pad_token=True)


def peak_memory_gb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def statements(n: int, words: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(VOCABULARY, size=words)) for _ in range(n)]


def measure(model: str, dtype: str, what: str, args: argparse.Namespace) -> dict:
    """One measurement in this process: tokens, seconds, tokens/s."""
    texts = statements(args.batch_size * args.steps, args.length)
    if what == "extraction":
        from weaklift.models.features import extract_features, tokenize
        from weaklift.models.loading import load_backbone

        backbone = load_backbone(model, dtype)
        extract_features(backbone, texts[:4], max_length=args.length, progress=False)  # warm-up
        start = time.perf_counter()
        extract_features(backbone, texts, max_length=args.length, all_layers=True, progress=False)
        synchronise()
        tokens = sum(len(ids) for ids in tokenize(backbone, texts, args.length))
        return {"tokens": tokens, "seconds": time.perf_counter() - start}
    if what in ("lora", "full"):
        return _training_steps(model, dtype, what, texts, args)
    from weaklift.models.causal_lm import load_causal_lm
    from weaklift.models.lm import Decoding, PromptRule, encode_prompts, generate, token_logprobs

    lm = load_causal_lm(model, dtype)
    prompts = encode_prompts(lm.tokenizer, texts, PromptRule(args.length))
    if what == "scoring":
        half = [ids[: len(ids) // 2] for ids in prompts]
        rest = [ids[len(ids) // 2 :] for ids in prompts]
        token_logprobs(lm.model, half[:2], rest[:2], lm.tokenizer.pad_token_id)  # warm-up
        start = time.perf_counter()
        token_logprobs(lm.model, half, rest, lm.tokenizer.pad_token_id, args.batch_size)
        synchronise()
        return {"tokens": sum(len(ids) for ids in prompts), "seconds": time.perf_counter() - start}
    how = Decoding(num=1, beams=1, max_new_tokens=args.new_tokens, batch_size=args.batch_size)
    some = prompts[: args.batch_size * 2]
    generate(lm.model, lm.tokenizer, some[:2], how, desc="warm-up")
    start = time.perf_counter()
    outputs = generate(lm.model, lm.tokenizer, some, how, desc="decoding")
    synchronise()
    tokens = sum(len(row[0].token_ids) for row in outputs)
    return {"tokens": tokens, "seconds": time.perf_counter() - start}


def _training_steps(model: str, dtype: str, mode: str, texts, args) -> dict:
    """``args.steps`` optimizer steps of a lora/full classifier after one warm-up step."""
    from weaklift.config import ModelConfig
    from weaklift.methods import Xent
    from weaklift.models.classifier import build_backbone_classifier
    from weaklift.models.loading import load_backbone
    from weaklift.training.batches import SubsetBatcher, TokenBatcher
    from weaklift.training.classifier import LoopConfig, train_classifier

    cfg = ModelConfig(
        model=model,
        mode=mode,
        dtype=dtype,
        layer=-1,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    loaded = load_backbone(model, "float32" if mode == "full" else dtype)
    classifier = build_backbone_classifier(loaded, cfg, num_classes=2)
    data = TokenBatcher(loaded.tokenizer, texts, args.length)
    targets = np.eye(2, dtype=np.float32)[np.arange(len(texts)) % 2]
    micro = args.micro_batch_size or args.batch_size
    warm = LoopConfig(epochs=1, batch_size=args.batch_size, lr=1e-5, micro_batch_size=micro)
    first = np.arange(args.batch_size)
    train_classifier(classifier, SubsetBatcher(data, first), targets[first], Xent(), warm)
    start = time.perf_counter()
    train_classifier(classifier, data, targets, Xent(), warm)
    synchronise()
    return {"tokens": int(sum(data.lengths())), "seconds": time.perf_counter() - start}


def run_one(model: str, dtype: str, what: str, args: argparse.Namespace) -> dict:
    """``measure`` in a fresh interpreter, so the peak memory it reports is this measurement's."""
    command = [sys.executable, __file__, "--one", model, dtype, what, *_shared_flags(args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shared_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--batch-size", str(args.batch_size), "--steps", str(args.steps),
             "--length", str(args.length), "--new-tokens", str(args.new_tokens)]  # fmt: skip
    if args.micro_batch_size:
        flags += ["--micro-batch-size", str(args.micro_batch_size)]
    if args.gradient_checkpointing:
        flags.append("--gradient-checkpointing")
    return flags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), help="a random-init llama shape")
    parser.add_argument("--model", help="or a zoo name / local folder instead of --shape")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=list(MEASUREMENTS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--micro-batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=4, help="timed batches per measurement")
    parser.add_argument("--length", type=int, default=64, help="tokens per text (about)")
    parser.add_argument("--new-tokens", type=int, default=32, help="decoding: tokens per prompt")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--save", type=Path, help="with --shape: save the model there and stop")
    parser.add_argument(
        "--one", nargs=3, metavar=("MODEL", "DTYPE", "WHAT"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one:
        model, dtype, what = args.one
        result = measure(model, dtype, what, args)
        print(json.dumps({**result, "peak_gb": peak_memory_gb()}))
        return
    if bool(args.shape) == bool(args.model):
        sys.exit("scale.py: give exactly one of --shape or --model")
    if args.save:
        print(f"saved {args.shape} to {build_shape(args.shape, args.save)}")
        return
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or str(build_shape(args.shape, Path(scratch) / args.shape))
        _print_table(model, args)


def _print_table(model: str, args: argparse.Namespace) -> None:
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    memory = "GPU max allocated" if torch.cuda.is_available() else "peak RSS"
    print(f"{args.shape or model} on {where}: batch {args.batch_size}, ~{args.length} tokens/text")
    print(f"{'measurement':<12} {'dtype':<9} {'tokens/s':>10} {memory:>18} {'seconds':>8}")
    for what in args.only:
        for dtype in args.dtypes:
            r = run_one(model, dtype, what, args)
            if "error" in r:
                print(f"{what:<12} {dtype:<9} failed: {r['error']}")
                continue
            rate = r["tokens"] / r["seconds"]
            print(
                f"{what:<12} {dtype:<9} {rate:>10.0f} {r['peak_gb']:>15.2f} GB {r['seconds']:>8.2f}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
