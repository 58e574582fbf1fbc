"""The dry run's CPU estimate against real runs of the same recipes on the real composite (issue: an honest
dry run). For STSTNet, Off-ApexNet and hsta_flow at their recipes, `run --dry-run` on this machine (steps timed
through the engine's trainer: orchestrate/calibrate.py) estimates the training time of the 68 folds; the committed
leaderboard store holds what the runs at today's recipe (today's config key, training seed 0) measured, summed
over their folds, on this machine. The ratio of the two is printed; the goal is within a factor of 1.5 either way.

The baseline is a recorded run, not one made in this session: a real recipe takes 30 minutes to 4 hours here.
Which run and which commit each number comes from is printed beside it.
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from helpers import SHARED_FLOW, realdata
from hsta_bench import config
from hsta_bench.engine.evaluate import plan
from hsta_bench.leaderboard import store as store_mod

REPO = Path(__file__).resolve().parents[2]
GROUP = "dry-run estimate / measured (real composite, this machine)"
GOAL = 1.5


def dry_run(model: str) -> dict:
    from hsta_bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    args = ["run", "--dataset", "megc2019-flow", "--model", model, "--preset", "paper"]
    old, sys.argv = (
        sys.argv,
        ["hsta-bench", *args, "--data-root", f"megc2019-flow={SHARED_FLOW}", "--dry-run", "--json"],
    )
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        assert not exc.code, err.getvalue()
    finally:
        sys.argv = old
    return json.loads(out.getvalue())


def measured(model: str, entries: list[dict]) -> list[dict]:
    """The store's real runs of `model` at today's recipe (today's config key)."""
    cfg = config.load(data_roots=[f"megc2019-flow={SHARED_FLOW}"])
    key = plan(model, "megc2019-flow", cfg, "paper", prepare=False).key()
    return [e for e in entries if e["config_key"] == key and not e["synthetic"]]


@realdata
@pytest.mark.parametrize("model", ["ststnet", "off_apexnet", "hsta_flow"])
def test_the_dry_run_against_the_measured_time_of_real_runs(timings, model):
    runs = measured(model, store_mod.read(REPO / "leaderboard" / "results").entries)
    if not runs:
        pytest.skip(f"no real run of {model} at today's recipe in the committed store")
    (evaluation,) = dry_run(model)["evaluations"]
    estimated = sum(t["seconds"] for t in evaluation["trial_list"])  # training summed over folds, as the store's
    real = sum(e["seconds"] for e in runs) / len(runs)
    ratio = estimated / real
    timings.record(GROUP, f"{model} measured", real)
    timings.record(GROUP, f"{model} estimated", estimated)
    within = "within" if 1 / GOAL <= ratio <= GOAL else "NOT within"
    timings.note(
        GROUP,
        f"{model}: estimated {estimated / 60:.1f} min of training summed over folds ({evaluation['device']}), "
        f"measured {real / 60:.1f} (mean of {len(runs)} run(s): {', '.join(e['run_id'] for e in runs)}; commit "
        f"{runs[-1]['commit'][:7]}): ratio {ratio:.2f}, {within} the goal of {GOAL}x",
    )
    assert evaluation["device"].endswith("steps timed here")
