"""The function a Ray Tune trial of a run calls, in a Ray worker (ray_tune.py hands it to Tune).

A module of its own, light to import: a worker Tune starts is ready for a trial once it has imported this
module, so every worker the run's resources allow takes a trial. With the engine imported at the top, the
first worker up took the short trials that the others, still importing torch, would have run, and a run's
trials did not spread over the GPUs and nodes it was given (tests/test_ray_gpus.py).
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
