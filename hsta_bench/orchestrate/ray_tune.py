"""Trials as Ray Tune trials: on a local Ray instance started (and stopped) for the run, or on a cluster.

Each trial gets its evaluation's plan (prepared inputs, labels, folds) through Ray's object store, not
through globals or files, so it runs the same on any node; it writes its fragments where the run says
(a cluster needs `dispatch.storage` on storage every node shares). Ray Tune does the scheduling, the
resources per trial (CPUs, fractional GPUs) and the retries (`dispatch.max_failures`); its own console
output is off (the run shows orchestrate/view.py instead) and Ray's log goes to the run's logs/ray.log.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

from hsta_bench.errors import UserError

_RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air", "ray.data")


def _trainable(config: dict, plans: dict, root: str) -> None:
    """One trial, in a Ray worker process: train its folds and report progress after each."""
    import ray
    from ray import tune

    from hsta_bench.orchestrate.trials import Trial, run_trial

    trial = Trial.from_config(config["trial"])
    plan = ray.get(plans[trial.pair])

    def report(done: int, total: int) -> None:
        tune.report({"folds_done": done, "folds_total": total})

    run_trial(trial, plan, Path(root), report)


class Session:
    """A connection to Ray for the length of a run: a local instance, or a cluster joined with `address`."""

    def __init__(self, address: str | None, d, log_dir: Path):
        if address and "RAY_AUTH_MODE" not in os.environ and _token_available():
            # Ray 2.60 clusters use token authentication by default, and a driver joining one sends the
            # token only in token mode, which it does not infer from the token being there. Ray reads the
            # mode when it is imported (hence before `import ray`, and a refresh if it already was).
            os.environ["RAY_AUTH_MODE"] = "token"
            if "ray" in sys.modules:
                from ray._raylet import Config

                Config.initialize("")
        import ray

        log_dir.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(log_dir / "ray.log", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._saved = []
        for name in _RAY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.propagate, list(logger.handlers)))
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Tune status tables on the console
        # Ctrl-C raises KeyboardInterrupt at once (Tune's own handler would let trials run 10 s more and
        # return as if they had finished); the run records itself as interrupted and stops Ray
        os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
        started = time.perf_counter()
        self.address = address
        # ray.init empties its logger's handlers and then logs (a token-auth warning, the instance's start):
        # while it runs, what reaches the root logger goes to the file instead of the console.
        root = logging.getLogger()
        root_handlers, root.handlers = root.handlers, [self._handler]
        for name in _RAY_LOGGERS:
            logging.getLogger(name).propagate = True
        options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            if address:
                ray.init(address=address, **options)
            else:
                # "local" starts a new instance even when another one runs on this machine
                ray.init(address="local", num_cpus=d.num_cpus or os.cpu_count(), **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            root.handlers = root_handlers
            self._restore_logging()
            raise UserError(f"--address {address}: cannot join the Ray cluster ({str(exc).splitlines()[0]})") from None
        root.handlers = root_handlers
        self._route_logging()
        self.start_seconds = time.perf_counter() - started

    def _route_logging(self) -> None:
        for name in _RAY_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers = [self._handler]
            logger.propagate = False
            logger.setLevel(logging.INFO)

    def _restore_logging(self) -> None:
        for logger, propagate, handlers in self._saved:
            logger.handlers, logger.propagate = handlers, propagate
        self._handler.close()

    def describe(self) -> dict:
        import ray

        context = ray.get_runtime_context()
        resources = ray.cluster_resources()
        return {"executor": "ray", "address": context.gcs_address, "joined": bool(self.address),
                "start_seconds": round(self.start_seconds, 2),
                "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0),
                "nodes": len([n for n in ray.nodes() if n.get("Alive")]), "ray": ray.__version__}

    def slots(self, d) -> int:
        """How many trials of the default size run at once on this Ray instance."""
        import ray

        resources = ray.cluster_resources()
        cpus = resources.get("CPU", 0)
        n = math.floor(cpus / d.cpus_per_trial + 1e-9)
        if d.gpus_per_trial > 0:
            n = min(n, math.floor(resources.get("GPU", 0) / d.gpus_per_trial + 1e-9))
        if n < 1:
            raise UserError(f"dispatch: a trial asks for {d.cpus_per_trial} CPU(s) and {d.gpus_per_trial} GPU(s); "
                            f"the Ray instance has {cpus:g} CPU(s) and {resources.get('GPU', 0):g} GPU(s)")
        return n

    def dispatch(self, trials, plans: dict, root: Path, view, d, tune_dir: Path):
        """Run `trials` through Ray Tune; returns (trial, error) for those that failed every attempt."""
        import ray
        from ray import tune

        from hsta_bench.orchestrate.trials import Trial

        if not trials:
            return []
        refs = {key: ray.put(plans[key]) for key in dict.fromkeys(t.pair for t in trials)}
        trainable = tune.with_parameters(_trainable, plans=refs, root=str(root))
        trainable = tune.with_resources(trainable, _placement)
        tune_dir.mkdir(parents=True, exist_ok=True)
        attempt = f"attempt-{len([p for p in tune_dir.iterdir() if p.is_dir()]) + 1}"
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([t.as_config() for t in trials])},
            tune_config=tune.TuneConfig(reuse_actors=True, trial_name_creator=_short_name,
                                        trial_dirname_creator=_short_name),
            run_config=tune.RunConfig(
                name=attempt, storage_path=str(tune_dir.resolve()), verbose=0, log_to_file=True,
                failure_config=tune.FailureConfig(max_failures=d.max_failures),
                callbacks=[_view_callback(view)], progress_reporter=None,
            ),
        )
        grid = tuner.fit()  # Ctrl-C: KeyboardInterrupt, handled by the runner
        failures = [(Trial.from_config(r.config["trial"]), _error_text(r)) for r in grid if r.error is not None]
        return failures

    def close(self) -> float:
        """Stop a local instance (or leave the cluster); returns the seconds it took."""
        import ray

        started = time.perf_counter()
        try:
            ray.shutdown()
        finally:
            self._restore_logging()
        return time.perf_counter() - started


def _short_name(trial) -> str:
    """model-dataset-gN-<id> (Tune's default spells out the whole config, which grows with the folds)."""
    t = trial.config["trial"]
    return f"{t['model']}-{t['dataset']}-g{t['group']}-{trial.trial_id}"


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def _placement(config: dict):
    from ray import tune

    trial = config["trial"]
    return tune.PlacementGroupFactory([{"CPU": trial["cpus"], "GPU": trial["gpus"]}])


def _error_text(result) -> str:
    path = Path(result.path) / "error.txt" if result.path else None
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    return str(result.error)


def _trial_name(trial) -> str:
    from hsta_bench.orchestrate.trials import Trial

    return Trial.from_config(trial.config["trial"]).name


def _view_callback(view):
    """A Ray Tune callback forwarding trial events to the run's view (Tune calls it in the driver)."""
    from ray import tune

    class ViewCallback(tune.Callback):
        def __init__(self, view):
            self.view = view

        def __getstate__(self):  # Tune pickles its callbacks with the experiment; the view stays in the driver
            return {}

        def __setstate__(self, state):
            self.view = _NoView()

        def on_trial_start(self, iteration, trials, trial, **info):  # every attempt
            self.view.started(_trial_name(trial))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "folds_done" in result:
                self.view.progress(_trial_name(trial), result["folds_done"], result["folds_total"])

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.view.finished(_trial_name(trial))

        def on_trial_recover(self, iteration, trials, trial, **info):  # failed, to be retried
            self.view.failed(_trial_name(trial), _last_line(trial), final=False)

        def on_trial_error(self, iteration, trials, trial, **info):  # failed for good
            self.view.failed(_trial_name(trial), _last_line(trial), final=True)

    return ViewCallback(view)


class _NoView:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _last_line(trial) -> str:
    error = getattr(trial, "error_message", None) or ""
    if not error and getattr(trial, "error_file", None) and os.path.isfile(trial.error_file):
        error = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "failed"
