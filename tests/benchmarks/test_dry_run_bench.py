"""The dry run's CPU estimate against real training of the same recipes on the real composite (issue: an honest
dry run). For STSTNet, Off-ApexNet and hsta_flow at their recipes, `run --dry-run` on this machine times each
model's steps through the engine's trainer (orchestrate/calibrate.py) and estimates the 68 folds' training.

Two baselines, each printed beside the estimate:
- measured in this run: the first LOSO fold of the real composite trained at a short budget (EPOCHS) through the
  engine (engine/train.fit_predict, one thread, as a trial trains it), against the dry run's estimate of a fold at
  that budget (its training summed over the 68 folds, over 68). The goal: within a factor of 1.5 either way.
- recorded: the latest run at today's recipe in the committed leaderboard store (its training summed over folds),
  against the estimate at the full recipe. Which run and which commit it was is printed: a recorded run ran with
  the code and the load of its day (several ran while the two cores also ran test suites).
"""

from __future__ import annotations

import io
import json
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from helpers import SHARED_FLOW, realdata
from hsta_bench import config
from hsta_bench.engine import provenance
from hsta_bench.engine.evaluate import plan
from hsta_bench.engine.train import FoldData, fit_predict
from hsta_bench.leaderboard import store as store_mod
from hsta_bench.models import create_model

REPO = Path(__file__).resolve().parents[2]
GROUP = "dry-run estimate / measured (real composite, this machine)"
GOAL = 1.5
EPOCHS = {"ststnet": 20, "off_apexnet": 30, "hsta_flow": 2}  # a fold in a few seconds
ROOT = f"megc2019-flow={SHARED_FLOW}"


def dry_run(model: str, *sets: str) -> dict:
    from hsta_bench.cli import main

    args = ["run", "--dataset", "megc2019-flow", "--model", model, "--preset", "paper", "--data-root", ROOT]
    args += [part for s in sets for part in ("--set", s)]
    out, err = io.StringIO(), io.StringIO()
    old, sys.argv = sys.argv, ["hsta-bench", *args, "--dry-run", "--json"]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        assert not exc.code, err.getvalue()
    finally:
        sys.argv = old
    (evaluation,) = json.loads(out.getvalue())["evaluations"]
    return evaluation


def training_seconds(evaluation: dict) -> float:
    return sum(t["seconds"] for t in evaluation["trial_list"])  # summed over folds, as a run records it


def first_fold_seconds(model: str, epochs: int) -> float:
    """The first LOSO fold trained for `epochs` at the recipe, one thread, through the engine."""
    cfg = config.load(sets=[f"train.epochs={epochs}"], data_roots=[ROOT])
    p = plan(model, "megc2019-flow", cfg, "paper")
    f = p.folds[0]
    data = FoldData(p.inputs, f.train, p.y[f.train], f.val, p.y[f.val], f.test)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        fit_predict(lambda: create_model(model, len(p.classes), **p.recipe.overrides), data, p.recipe.train, 3, 0)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def latest_recorded(model: str) -> dict | None:
    """The store's latest real run of `model` at today's recipe (any training seed)."""
    cfg = config.load(data_roots=[ROOT])
    today = plan(model, "megc2019-flow", cfg, "paper", prepare=False).settings()
    group = provenance.key({**today, "train": {**today["train"], "seed": None}})
    store = store_mod.read(REPO / "leaderboard" / "results")
    runs = [
        e
        for e in store.entries
        if not e["synthetic"]
        and e["config_key"] in store.settings
        and provenance.key({**(s := store.settings[e["config_key"]]), "train": {**s["train"], "seed": None}}) == group
    ]
    return max(runs, key=lambda e: e["finished"]) if runs else None


@realdata
@pytest.mark.parametrize("model", list(EPOCHS))
def test_the_dry_run_against_real_training(timings, model):
    epochs = EPOCHS[model]
    short = dry_run(model, f"train.epochs={epochs}")
    assert short["device"].endswith("steps timed here") and short["epochs"] == epochs
    estimated = training_seconds(short) / short["folds"]
    real = first_fold_seconds(model, epochs)
    ratio = estimated / real
    timings.record(GROUP, f"{model} fold, real", real)
    timings.record(GROUP, f"{model} fold, estimated", estimated)
    timings.note(
        GROUP,
        f"{model}: a fold at {epochs} epochs estimated {estimated:.2f} s, trained in {real:.2f} s: ratio "
        f"{ratio:.2f} ({'within' if 1 / GOAL <= ratio <= GOAL else 'NOT within'} the goal of {GOAL}x)",
    )
    recorded = latest_recorded(model)
    if recorded is not None:
        full = training_seconds(dry_run(model))
        timings.note(
            GROUP,
            f"{model}: its recipe estimated {full / 60:.1f} min of training summed over folds; run "
            f"{recorded['run_id']} (commit {recorded['commit'][:7]}) recorded {recorded['seconds'] / 60:.1f}: "
            f"ratio {full / recorded['seconds']:.2f}",
        )
    assert 1 / GOAL <= ratio <= GOAL
