"""The function a Ray Tune trial of a run calls, in a Ray worker (ray_tune.py hands it to Tune).

A module of its own, light to import: a worker Tune starts is ready for its trial once it has imported Ray and
this module, and loads the engine (torch) inside the trial, so the workers a run's resources allow start
together rather than one behind another's imports. Which worker runs which trial is still Tune's choice while
workers are reused (dispatch.reuse_workers): a run that must spread short trials over its GPUs or nodes sets it
false.
"""

from __future__ import annotations

from pathlib import Path

import ray
from ray import tune


def run(config: dict, plans: dict, root: str) -> None:
    """One trial: train its folds and report progress after each."""
    from hsta_bench.engine.device import granted_gpus  # noqa: PLC0415 - see the module's docstring
    from hsta_bench.orchestrate.trials import Trial, run_trial  # noqa: PLC0415 - see the module's docstring

    trial = Trial.from_config(config["trial"])
    plan = ray.get(plans[trial.pair])

    def report(done: int, total: int) -> None:
        tune.report({"folds_done": done, "folds_total": total})

    run_trial(trial, plan, Path(root), report, granted=granted_gpus())
