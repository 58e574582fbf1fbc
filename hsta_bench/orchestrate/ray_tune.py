"""Trials as Ray Tune trials: on a local Ray instance started (and stopped) for the run, or on a cluster.

Each trial gets its evaluation's plan (prepared inputs, labels, folds) through Ray's object store, not
through globals or files, so it runs the same on any node; it writes its fragments where the run says
(a cluster needs `dispatch.storage` on storage every node shares). Ray Tune does the scheduling, the
resources per trial (CPUs, fractional GPUs) and the retries (`dispatch.max_failures`); its own console
output is off (the run shows orchestrate/view.py instead) and Ray's log goes to the run's logs/ray.log.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from ray._raylet import Config  # type: ignore[attr-defined]  # in the compiled module, not its stub
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import baselines
from hsta_bench.errors import UserError
from hsta_bench.models import plugins
from hsta_bench.orchestrate import trainable
from hsta_bench.orchestrate.cluster import Cluster
from hsta_bench.orchestrate.trials import Trial
from hsta_bench.paths import PACKAGE_DIR, configs_dir

if TYPE_CHECKING:
    from ray.tune import Result

_RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air", "ray.data")


class Session:
    """A connection to Ray for the length of a run: a local instance, or a cluster joined with `address`."""

    def __init__(self, address: str | None, d, log_dir: Path):
        if address and "RAY_AUTH_MODE" not in os.environ and _token_available():
            # Ray 2.60 clusters use token authentication by default, and a driver joining one sends the
            # token only in token mode, which it does not infer from the token being there. Ray reads the
            # mode when it is imported, which this module has done: its config is read again.
            os.environ["RAY_AUTH_MODE"] = "token"
            Config.initialize("")

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
        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        self._shipped = None
        if address and d.ship_code:  # the driver's code on every node (its dependencies must be there already)
            self._shipped = tempfile.TemporaryDirectory(prefix="hsta-bench-code-")
            options["runtime_env"] = {"py_modules": shipped_code(Path(self._shipped.name))}
        if address:  # the --import modules: imported by every worker (a local instance's inherit the variable)
            if plugins.imported():
                runtime_env = options.setdefault("runtime_env", {})
                runtime_env["env_vars"] = {plugins.ENV: ",".join(plugins.imported())}
        try:
            if address:
                ray.init(address=address, **options)
            else:
                # "local" starts a new instance even when another one runs on this machine
                ray.init(address="local", num_cpus=d.num_cpus or os.cpu_count(), num_gpus=d.num_gpus, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            root.handlers = root_handlers
            self._restore_logging()
            self._forget_code()
            what = (
                f"--address {address}: cannot join the Ray cluster" if address else "cannot start a local Ray instance"
            )
            raise UserError(f"{what} ({str(exc).splitlines()[0]})") from None
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
        context = ray.get_runtime_context()
        resources = ray.cluster_resources()
        return {
            "executor": "ray",
            "address": context.gcs_address,
            "joined": bool(self.address),
            "start_seconds": round(self.start_seconds, 2),
            "cpus": resources.get("CPU", 0),
            "gpus": resources.get("GPU", 0),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "ray": ray.__version__,
        }

    in_ray = True

    def cluster(self):
        """The alive nodes of the Ray instance and their resources (orchestrate/cluster.py)."""
        return Cluster.from_ray()

    def dispatch(self, trials, plans: dict, root: Path, view, d, tune_dir: Path):
        """Run `trials` through Ray Tune; returns (trial, error) for those that failed every attempt."""
        if not trials:
            return []
        refs = {key: ray.put(plans[key]) for key in dict.fromkeys(t.pair for t in trials)}
        function = tune.with_resources(tune.with_parameters(trainable.run, plans=refs, root=str(root)), _placement)
        tune_dir.mkdir(parents=True, exist_ok=True)
        attempt = f"attempt-{len([p for p in tune_dir.iterdir() if p.is_dir()]) + 1}"
        tuner = tune.Tuner(
            function,
            param_space={"trial": tune.grid_search([t.as_config() for t in trials])},
            tune_config=tune.TuneConfig(
                reuse_actors=d.reuse_workers, trial_name_creator=_short_name, trial_dirname_creator=_short_name
            ),
            run_config=tune.RunConfig(
                name=attempt,
                storage_path=str(tune_dir.resolve()),
                verbose=0,
                log_to_file=True,
                failure_config=tune.FailureConfig(max_failures=d.max_failures),
                callbacks=[_view_callback(view)],
                progress_reporter=None,
            ),
        )
        grid = tuner.fit()  # Ctrl-C: KeyboardInterrupt, handled by the runner
        failures: list[tuple[Trial, str]] = []
        r: Result
        # a trial whose actor never started has no config: the grid keeps their order
        for i, r in enumerate(grid):  # type: ignore[arg-type]  # ResultGrid iterates by __getitem__, unseen by mypy
            if r.error is not None:
                config = r.config or {}
                failures.append(
                    (Trial.from_config(config["trial"]) if "trial" in config else trials[i], _error_text(r))
                )
        return failures

    def close(self) -> float:
        """Stop a local instance (or leave the cluster); returns the seconds it took."""
        started = time.perf_counter()
        try:
            ray.shutdown()
        finally:
            self._restore_logging()
            self._forget_code()
        return time.perf_counter() - started

    def _forget_code(self) -> None:
        if self._shipped is not None:
            self._shipped.cleanup()
            self._shipped = None

    def check_nodes(self, root: Path | None, console=None) -> list[dict]:
        """On a cluster joined with --address: every alive node can run a trial (the dependencies import,
        the shipped code is there) and writes where the driver reads (`root`: the fragments' folder, which
        must be storage every node shares). One line naming the first node that cannot; a node whose Ray
        GPUs torch cannot see is said (its GPU trials would fail). A local instance is this machine: nothing
        to check. Returns each node's report (run.json keeps them)."""
        if not self.address:
            return []
        probe = ray.remote(num_cpus=0, max_retries=0)(node_report)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        pending = {
            n["NodeID"]: probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(root) if root else None)
            for n in nodes
        }
        reports = []
        for n in nodes:
            where = f"node {n.get('NodeManagerAddress', '?')} ({n['NodeID'][:8]})"
            try:
                report = ray.get(pending[n["NodeID"]], timeout=300)
            except Exception as exc:  # noqa: BLE001 - whatever stops the probe there, said in one line
                lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                raise UserError(
                    f"{where}: cannot run hsta-bench there ({lines[-1].strip() if lines else type(exc).__name__}); "
                    "every node needs the project's Python environment (README: On GPUs and clusters)"
                ) from None
            report["ray_gpus"] = n.get("Resources", {}).get("GPU", 0)
            reports.append(report)
        problems, warnings = node_problems(reports, root)
        if problems:
            raise UserError(problems[0])
        for line in warnings:
            if console is not None:
                console.print(f"[yellow]warning:[/yellow] {line}")
        return reports


def shipped_code(into: Path) -> list[str]:
    """This checkout's packages as Ray ships them to each node (runtime_env py_modules): hsta_bench, with
    configs/ inside it as a wheel carries them (hsta_bench/_configs), baselines, and the modules of --import."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    package = into / "hsta_bench"
    shutil.copytree(PACKAGE_DIR, package, ignore=skip)
    if not (package / "_configs").is_dir():
        shutil.copytree(configs_dir(), package / "_configs", ignore=skip)

    shutil.copytree(Path(baselines.__file__).parent, into / "baselines", ignore=skip)

    return [str(package), str(into / "baselines"), *plugins.shipped(into)]


NODE_MODULES = ("torch", "numpy", "polars", "pyarrow", "hsta_bench.engine.train", "baselines")


def node_report(root: str | None) -> dict:
    """Run on one node (a Ray task): what it has for a trial, and a probe file written into `root`."""
    context = ray.get_runtime_context()
    report: dict[str, Any] = {
        "node_id": context.get_node_id(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "shipped": list(context.runtime_env.get("py_modules") or []),
        "missing": {},
    }
    for name in NODE_MODULES:
        try:
            module = importlib.import_module(name)
            report[name] = getattr(module, "__version__", None) or getattr(module, "__file__", "")
        except Exception as exc:  # noqa: BLE001 - reported, then said by the driver
            report["missing"][name] = f"{type(exc).__name__}: {exc}"
    try:
        import torch  # noqa: PLC0415 - probed on the node, where it may be missing (reported above)

        report["cuda"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - torch missing: already in `missing`
        report["cuda"] = 0
    if root is not None:
        try:
            probe = Path(root) / ".nodes" / report["node_id"]
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_text(report["host"])
            report["wrote"] = str(probe)
        except OSError as exc:
            report["missing"]["storage"] = f"cannot write {root}: {exc.strerror or exc}"
    return report


def node_problems(reports: list[dict], root: Path | None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the nodes' reports: a module that does not import, a fragments folder a node
    cannot write or that the driver does not see what it wrote in; Ray GPUs torch cannot see (warning)."""
    problems, warnings = [], []
    for r in reports:
        where = f"node {r.get('host', '?')} ({str(r.get('node_id', '?'))[:8]})"
        for name, why in r.get("missing", {}).items():
            if name == "storage":
                problems.append(f"{where}: {why}; set dispatch.storage to storage every node shares")
            else:
                problems.append(
                    f"{where}: cannot import {name} ({why}); every node needs the project's Python "
                    "environment (README: On GPUs and clusters)"
                )
        if root is not None and r.get("wrote") and not Path(r["wrote"]).is_file():
            problems.append(
                f"{where}: writes its folds to {root} on storage the driver does not see; set "
                "dispatch.storage to storage every node shares"
            )
        if r.get("ray_gpus", 0) > 0 and not r.get("cuda"):
            warnings.append(
                f"{where}: Ray gives it {r['ray_gpus']:g} GPU(s) but torch there sees no CUDA device: "
                "trials granted one fail unless train.device=cpu"
            )
    return problems, warnings


def _short_name(trial) -> str:
    """model-dataset-gN-<id> (Tune's default spells out the whole config, which grows with the folds)."""
    t = trial.config["trial"]
    return f"{t['model']}-{t['dataset']}-g{t['group']}-{trial.trial_id}"


def _token_available() -> bool:
    return bool(
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").is_file()
    )


def _placement(config: dict):
    trial = config["trial"]
    return tune.PlacementGroupFactory([{"CPU": trial["cpus"], "GPU": trial["gpus"]}])


def _error_text(result) -> str:
    path = Path(result.path) / "error.txt" if result.path else None
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    return str(result.error)


def _trial_name(trial) -> str:
    return Trial.from_config(trial.config["trial"]).name


def _view_callback(view):
    """A Ray Tune callback forwarding trial events to the run's view (Tune calls it in the driver)."""

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
