"""Several processes, one experiment: two gloo processes under torchrun give one process's results.

Each test runs the same small config twice, as ``python -m weaklift run`` and as ``torchrun
--nproc-per-node 2 -m weaklift run``, into two output folders, and compares results.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import test_gen_preference, test_layers
from tests.test_gen_preference import _overrides as _genpref_overrides
from tests.test_pipeline import _overrides
from weaklift import distributed
from weaklift.cli import main

workdir = test_layers.workdir
genpref = test_gen_preference.workdir


def _launch(out: Path, overrides: list[str], processes: int) -> tuple[dict, list[str]]:
    """results.json of the run, and its log lines (the main process's only, for several)."""
    launcher = [sys.executable, "-m", "weaklift"]
    if processes > 1:
        launcher = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(processes), "-m", "weaklift",
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(
        [*launcher, "run", *overrides], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if processes > 1:  # both joined, and only the main process spoke
        assert f"process 0 of {processes} joined (gloo)" in done.stderr
        assert "process 1 of" not in done.stderr
    (results,) = (out / "runs").glob("*/results.json")
    return json.loads(results.read_text()), _log(done.stderr)


def _log(stderr: str) -> list[str]:
    """weaklift's log lines ("[weaklift] training ceiling ..."), without the progress bars."""
    return [line for line in stderr.splitlines() if line.startswith("[weaklift] ")]


def _numbers(results: dict) -> dict[str, float]:
    from weaklift.collect import flatten

    skip = ("config", "seconds", "dtypes")
    return {
        k: float(v)
        for k, v in flatten({k: v for k, v in results.items() if k not in skip}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }


def _accuracies(results: dict) -> dict[str, float]:
    found = {"weak": results["weak"]["accuracy"], "ceiling": results["ceiling"]["accuracy"]}
    found.update({f"student/{m}": b["accuracy"] for m, b in results["students"].items()})
    return found


@pytest.mark.parametrize("mode", ["probe", "lora", "full", "fsdp", "genft"])
def test_two_processes_give_the_one_process_results(workdir, tmp_path, mode):
    extra = [f"strong.mode={mode}", "methods=[xent,logconf]", "strong.dtype=float32"]
    if mode == "fsdp":  # full finetuning, each process holding half of the weights
        extra[0:1] = ["strong.mode=full", "strong.fsdp=true"]
    if mode == "genft":  # generative finetuning (full), each process on half of each batch
        extra[0:1] = ["strong.mode=probe", "strong.genft.enabled=true", "strong.genft.mode=full"]
        extra += ["strong.genft.max_texts=60", "strong.genft.lr=3e-3", "strong.genft.epochs=2"]
    one, one_log = _launch(tmp_path / "one", _overrides(workdir, tmp_path / "one", *extra), 1)
    two, two_log = _launch(tmp_path / "two", _overrides(workdir, tmp_path / "two", *extra), 2)
    sharded = [line for line in two_log if line.startswith("[weaklift] sharded over 2 processes")]
    if mode == "fsdp":  # ceiling and two students, each sharded block by block
        assert sharded == ["[weaklift] sharded over 2 processes (FSDP, 2 blocks)"] * 3
    else:
        assert not sharded
    two_log = [line for line in two_log if line not in sharded]
    one_log = [line.replace(str(tmp_path / "one"), str(tmp_path / "two")) for line in one_log]
    assert two_log == ["[weaklift] process 0 of 2 joined (gloo)", *one_log]  # said once
    assert one["num_test"] == two["num_test"]
    for name, accuracy in _accuracies(one).items():
        assert abs(_accuracies(two)[name] - accuracy) <= 0.01, name  # the tolerance
    _same_numbers(one, two)  # in fact: the same numbers, to float rounding
    store = tmp_path / "two" / "artifacts"
    assert not list(store.glob("*/.tmp-*")), "a temporary left in the store"
    # one copy of every stage, written once: as many artifacts as the one-process store (after
    # genft, the same stages: their keys name the finetuned folder, which is in each store)
    assert _artifacts(tmp_path / "one" / "artifacts", mode) == _artifacts(store, mode)
    if mode == "genft":  # the sharded steps are the one-process steps: the same LM losses
        losses = [_genft_losses(tmp_path / run / "artifacts") for run in ("one", "two")]
        assert losses[0][1] < losses[0][0] - 0.1  # it learnt
        assert losses[1] == pytest.approx(losses[0], abs=1e-4)


def _artifacts(store: Path, mode: str) -> list[str]:
    folders = [p.parent for p in store.glob("*/*/manifest.json")]
    return sorted(f.parent.name if mode == "genft" else f.name for f in folders)


def _genft_losses(store: Path) -> tuple[float, float]:
    (manifest,) = store.glob("genft/*/manifest.json")
    meta = json.loads(manifest.read_text())["meta"]
    return meta["lm_loss_before"], meta["lm_loss_after"]


def test_map_sharded_in_one_process_is_a_plain_map():
    assert not distributed.active()
    assert distributed.map_sharded([1, 2, 3], lambda x: x * 10) == [10, 20, 30]
    rows = np.arange(10)
    assert [list(m) for m in distributed.local_micro_batches(rows, 4)] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9],
    ]  # fmt: skip


def test_gradients_are_summed_in_buckets_and_written_back_in_place(tmp_path, monkeypatch):
    """A process group of one (gloo): the all-reduce is the identity, so every gradient must come
    back unchanged, in as many all-reduces as buckets of at most GRADIENT_BUCKET elements."""
    import torch
    import torch.distributed as dist

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n)) for n in (3, 4, 2, 6, 1)]
    for p in params[:-1]:
        p.grad = torch.randn_like(p)  # the last has none: it is summed as zeros
    expected = [p.grad.clone() for p in params[:-1]] + [torch.zeros(1)]
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        calls = []
        reduce = dist.all_reduce
        monkeypatch.setattr(dist, "all_reduce", lambda t: (calls.append(t.numel()), reduce(t)))
        monkeypatch.setattr(distributed, "active", lambda: True)
        monkeypatch.setattr(distributed, "GRADIENT_BUCKET", 7)
        distributed.sum_gradients(params)
    finally:
        dist.destroy_process_group()
    assert calls == [7, 2, 7]  # [3, 4], [2], [6, 1]: a bucket closes before it would pass 7
    for p, want in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, want)


def test_a_sweep_under_several_processes_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: s\nbase: {{output_dir: {tmp_path / 'out'}}}\ngrid: {{seed: [0, 1]}}\n")
    assert main(["sweep", str(sweep)]) != 0
    assert "sweep runs its points in one launcher (WORLD_SIZE=2)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sharded", [False, True])
def test_generation_and_preference_loops_give_the_one_process_results(genpref, tmp_path, sharded):
    """Weak generators, ceiling and students (generation loop, beam decoding), DPO candidates,
    weak judges and the DPO loop (scoring, preference training), in one experiment. ``sharded``:
    full finetuning with FSDP for one weak generator and for the strong ceiling, students and
    DPO policies."""
    extra = []
    if sharded:
        weak = genpref["weak"]
        extra = [
            f"weak=[{{model: {weak}, mode: full, fsdp: true}}, {{model: {weak}, mode: lora, seed: 1}}]",
            "strong.mode=full",
            "strong.fsdp=true",
            "train.finetune.lr=1e-4",
            "preference.train.lr=1e-4",
        ]
    runs = {n: _genpref_overrides(genpref, tmp_path / n, *extra) for n in ("one", "two")}
    one, one_log = _launch(tmp_path / "one", runs["one"], 1)
    two, two_log = _launch(tmp_path / "two", runs["two"], 2)
    sharded_lines = [line for line in two_log if "sharded over 2 processes" in line]
    # the weak generator, the ceiling, two students, and a policy per loss (dpo, cdpo)
    assert len(sharded_lines) == (6 if sharded else 0)
    two_log = [line for line in two_log if line not in sharded_lines]
    assert two_log == ["[weaklift] process 0 of 2 joined (gloo)", *one_log]
    _same_numbers(one, two)


def _same_numbers(one: dict, two: dict) -> None:
    """Every number of results.json (metrics, PGRs, CIs, training summaries) but wall times."""
    a, b = _numbers(one), _numbers(two)
    assert a.keys() == b.keys()
    for key, value in a.items():
        if not key.endswith("seconds"):
            assert b[key] == pytest.approx(value, abs=1e-3), key
