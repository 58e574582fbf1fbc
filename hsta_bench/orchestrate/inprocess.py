"""Trials one after another in this process (`hsta-bench run --in-process`): no Ray, the same trial code,
fragments, retries and resume. For debugging, and the baseline Ray's overhead is measured against.
Same interface as ray_tune.Session."""

from __future__ import annotations

import traceback

from hsta_bench.orchestrate.cluster import Cluster
from hsta_bench.orchestrate.trials import run_trial


class InProcess:
    in_ray = False  # trials train where this process is (engine/device.py), one after another

    def cluster(self):
        return Cluster.local()

    def describe(self) -> dict:
        return {"executor": "in-process"}

    def dispatch(self, trials, plans: dict, root, view, d, tune_dir=None) -> list[tuple[object, str]]:
        """Run `trials`; returns (trial, traceback) for those that failed d.max_failures + 1 times."""
        failures = []
        for trial in trials:
            for attempt in range(d.max_failures + 1):
                view.started(trial.name)
                try:
                    run_trial(trial, plans[trial.pair], root, report=lambda k, n, t=trial: view.progress(t.name, k, n))
                except Exception as exc:  # noqa: BLE001 - any failure of a trial is retried, then reported
                    final = attempt == d.max_failures
                    view.failed(trial.name, f"{type(exc).__name__}: {exc}", final)
                    if final:
                        failures.append((trial, traceback.format_exc()))
                    continue
                view.finished(trial.name)
                break
        return failures

    def close(self) -> float:
        return 0.0
