"""The GPU check: every method family end to end in bfloat16 on random-init models, then scale.py.

Needs only the repository and a Python with weaklift's dependencies; builds its models (random
init, local word-level tokenizers) and its data in a scratch folder, nothing is downloaded.
``benchmarks/gpu_check.sh`` runs it; it prints one line per run and then scale.py's table.

Matrix (each a ``python -m weaklift run``, every model in bfloat16):
- classification, strong probe / lora / full, methods xent, logconf, bayes;
- generation (slot filling, a SLURP-format file), method soft (lora), and sft with a full student;
- preference optimisation from a pairs file, loss dpo, lora and full (float32 master weights).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story", "plot"]


def write_reviews(path: Path, n: int = 240) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w") as handle:
        for i in range(n):
            label = i % 2
            words = [*rng.choice(FILLER, size=6), rng.choice(POSITIVE if label else NEGATIVE)]
            rng.shuffle(words)
            handle.write(json.dumps({"review": " ".join(words), "label": int(label)}) + "\n")
    return path


def write_slurp(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t in ("seven", "eight", "nine", "ten", "noon", "six"):
        for d in ("today", "tomorrow", "monday", "friday"):
            words = f"wake me up at {t} {d}".split()
            rows.append({"sentence": " ".join(words), "scenario": "alarm", "action": "set",
                         "tokens": [{"surface": w} for w in words],
                         "entities": [{"type": "time", "span": [4]}, {"type": "date", "span": [5]}]})  # fmt: skip
    (folder / "devel.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def write_pairs(path: Path, n: int = 64) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w") as handle:
        for i in range(n):
            subject = rng.choice(["the cat", "the city", "the river", "the film"])
            row = {"prompt": f"question {i} : is {subject} good ?",
                   "chosen": f" {rng.choice(POSITIVE)} , {subject} is {rng.choice(POSITIVE)}",
                   "rejected": f" {rng.choice(NEGATIVE)} , {subject} is {rng.choice(NEGATIVE)}"}  # fmt: skip
            handle.write(json.dumps(row) + "\n")
    return path


def build_models(scratch: Path) -> dict[str, str]:
    from transformers.utils import logging as hf_logging

    from tests.tiny_lms import make_tiny_lm, word_tokenizer
    from tests.tiny_models import make_tiny_model

    hf_logging.disable_progress_bar()  # one bar per tiny file written would bury the table

    words = POSITIVE + NEGATIVE + FILLER
    slurp = "wake me up at seven eight nine ten noon six today tomorrow monday friday alarm set"
    texts = [" ".join(words), slurp, "question is the cat city river film good , time date"]
    return {
        "encoder": str(make_tiny_model(scratch / "encoder", arch="bert", texts=texts)),
        "decoder": str(make_tiny_model(scratch / "decoder", arch="llama", texts=texts)),
        "lm": str(make_tiny_lm(scratch / "lm", word_tokenizer(texts))),
        "lm_strong": str(make_tiny_lm(scratch / "lm_strong", word_tokenizer(texts), seed=1)),
    }


def matrix(models: dict[str, str], scratch: Path) -> dict[str, list[str]]:
    reviews = write_reviews(scratch / "reviews.jsonl")
    classification = [
        "task.name=file", f"task.path={reviews}", "task.template=Review: {review}",
        "task.label_column=label", f"weak.model={models['encoder']}", "weak.dtype=bfloat16",
        f"strong.model={models['decoder']}", "strong.dtype=bfloat16",
        "methods=[xent, logconf, bayes]", "seeds=1", "controls=false", "bootstrap_samples=50",
        "split.weak_train=60", "split.transfer=60", "split.val=20", "split.test=60",
        "train.finetune.epochs=1", "train.finetune.lr=1e-3",
    ]  # fmt: skip
    generation = [
        "task.name=slurp", f"task.path={write_slurp(scratch / 'slurp')}",
        f"weak=[{{model: {models['lm']}, mode: lora, dtype: bfloat16}}]",
        f"strong.model={models['lm_strong']}", "strong.mode=lora", "strong.dtype=bfloat16",
        "methods=[soft]", "train.finetune.epochs=1", "train.finetune.batch_size=4",
        "train.finetune.lr=1e-3", "generation.max_new_tokens=6", "generation.beams=2",
        "generation.n_best=2", "bootstrap_samples=20",
        "split.weak_train=8", "split.transfer=8", "split.val=2", "split.test=6",
    ]  # fmt: skip
    pairs = [
        "task.name=pairs_file", f"task.path={write_pairs(scratch / 'pairs.jsonl')}",
        f"strong.model={models['lm_strong']}", "strong.mode=lora", "strong.dtype=bfloat16",
        "preference.losses=[dpo]", "preference.train.epochs=2", "preference.train.lr=3e-2",
        "split.weak_train=2", "split.transfer=40", "split.val=1", "split.test=20",
        "bootstrap_samples=50",
    ]  # fmt: skip
    runs = {f"classification {mode}": [*classification, f"strong.mode={mode}"]
            for mode in ("probe", "lora", "full")}  # fmt: skip
    runs["generation soft"] = generation
    runs["generation full"] = [*generation, "strong.mode=full", "methods=[sft]"]
    runs["preference dpo"] = pairs
    runs["preference dpo full"] = [*pairs, "strong.mode=full", "preference.train.lr=1e-3"]
    return runs


def run_matrix(scratch: Path) -> bool:
    runs = matrix(build_models(scratch), scratch)
    ok = True
    for name, overrides in runs.items():
        out = scratch / name.replace(" ", "_")
        command = [
            sys.executable,
            "-m",
            "weaklift",
            "run",
            "--json",
            *overrides,
            f"output_dir={out}",
        ]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            ok = False
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"FAIL  {name:<24} {seconds:6.1f} s  {last}")
            continue
        results = json.loads(done.stdout)
        print(f"ok    {name:<24} {seconds:6.1f} s  dtypes {results.get('dtypes')}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="llama-1b", help="scale.py shape after the matrix")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    import torch

    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no GPU visible)"
    print(f"gpu_check on {where}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as scratch:
        ok = run_matrix(Path(scratch))
    if not args.skip_scale:
        scale = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--shape", args.shape]
        ok = subprocess.run(scale, cwd=ROOT).returncode == 0 and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
