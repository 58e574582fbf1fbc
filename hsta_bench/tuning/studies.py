"""A study, run: Optuna's TPE proposes, Ray Tune runs the trials (ASHA stops the weak ones early), and the
study lives in an Optuna RDB storage (SQLite next to the tune) so that a tune resumes where it stopped.

    <tune>/study.db        one Optuna study per nested study, named <tune_id>/<study> (g0, g1, ..., all)
                           (or in the database tune.storage names)
    <tune>/ray/attempt-N/  Ray Tune's experiment (all studies in one) and each trial's results

Finished trials are those Optuna marks COMPLETE (trained the whole epoch budget) or PRUNED (stopped by ASHA;
their value is the score at the epoch they reached). A study runs until it holds `trials` finished trials:
trials left RUNNING by a killed tune are marked FAIL on resume and replaced.
"""

from __future__ import annotations

from pathlib import Path


def storage(path: Path, url: str | None = None):
    """Optuna's RDB storage: `url` (tune.storage) when given, else SQLite at `path`."""
    import optuna

    from hsta_bench.errors import UserError

    if url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:  # noqa: BLE001 - any reason the database cannot be opened is one line
            raise UserError(f"tune.storage={url}: cannot open it ({str(exc).splitlines()[0]})") from None
    # timeout: the driver is the only writer, but a report being read while it writes must wait, not fail
    return optuna.storages.RDBStorage(
        f"sqlite:///{Path(path).resolve()}", engine_kwargs={"connect_args": {"timeout": 30}}
    )


def study_name(tune_id: str, study) -> str:
    return f"{tune_id}/{study.name}"


def open_study(store, tune_id: str, study):
    """The Optuna study of `study` (created when new), with trials a killed run left RUNNING marked FAIL."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(
        storage=store, study_name=study_name(tune_id, study), direction="maximize", load_if_exists=True
    )
    for key, value in study.describe().items():
        s.set_user_attr(key, value)
    for t in s.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        s.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    return s


def load(store, tune_id: str, study):
    """The Optuna study of `study` as it is in the storage, or None when it was never started."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name(tune_id, study), storage=store)
    except KeyError:
        return None


def finished(s) -> int:
    from optuna.trial import TrialState

    return len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _classes():
    """The Tune searcher and scheduler of a tune (defined on first use: Ray is imported only by commands
    that need it)."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    from optuna.trial import TrialState
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):
        """Ray Tune's OptunaSearch for one study, with what it records completed: a trial ASHA stopped
        before the budget is PRUNED (TPE ranks it by the epoch it reached, and it is never the best), its
        last score is kept as an intermediate value, and its epochs and the subjects it saw are user
        attributes (what the leakage test reads)."""

        def __init__(self, *args, budget: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.budget = budget
            self.steps: dict[str, set] = {}

        def on_trial_result(self, trial_id, result):
            self.steps.setdefault(trial_id, set()).add(result.get("training_iteration"))
            super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            trial = self._ot_trials.get(trial_id)
            if trial is None or trial_id in self._completed_trials or not result:
                return super().on_trial_complete(trial_id, result, error)
            trial.set_user_attr("epochs", int(result.get("epoch", 0)))
            trial.set_user_attr("subjects_seen", list(result.get("subjects_seen", [])))
            trial.set_user_attr("ray_trial_id", trial_id)
            step = result.get("training_iteration")
            if not error and self.metric in result and step is not None and step not in self.steps.get(trial_id, ()):
                trial.report(result[self.metric], step)  # Tune sends the last result here, not to on_trial_result
            if not error and result.get("epoch", self.budget) < self.budget:
                self._ot_study.tell(trial, state=TrialState.PRUNED)
                self._completed_trials.add(trial_id)
                return None
            return super().on_trial_complete(trial_id, result, error)

    class Studies(Searcher):
        """Several studies behind one Tune experiment: each in turn is asked for the trials it still needs,
        and every result goes back to the study that proposed it. One experiment keeps the workers warm
        and the slots full across studies; each study keeps its own TPE model of its own trials."""

        def __init__(self, entries: list, metric: str):
            super().__init__(metric=metric, mode="max")
            self.entries = [[name, search, left] for name, search, left in entries]
            self.owner: dict = {}

        def suggest(self, trial_id):
            for entry in self.entries:
                name, search, left = entry
                if left > 0:
                    entry[2] -= 1
                    self.owner[trial_id] = search
                    return {"study": name, **search.suggest(trial_id)}
            return Searcher.FINISHED

        def on_trial_result(self, trial_id, result):
            self.owner[trial_id].on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.owner[trial_id].on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path):  # the studies live in Optuna's storage: a tune resumes from there
            return None

    class PerStudy(FIFOScheduler):
        """One ASHA per study behind one Tune experiment: trials are stopped against their own study's
        trials only (comparing across studies would let a held-out subject's validation scores decide)."""

        def __init__(self, schedulers: dict):
            super().__init__()
            self.schedulers = schedulers

        def set_search_properties(self, metric, mode, **spec):
            return True  # each ASHA has its own

        def _of(self, trial):
            return self.schedulers[trial.config["study"]]

        def on_trial_add(self, tune_controller, trial):
            self._of(trial).on_trial_add(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result):
            return self._of(trial).on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller, trial, result):
            self._of(trial).on_trial_complete(tune_controller, trial, result)

        def on_trial_error(self, tune_controller, trial):
            self._of(trial).on_trial_error(tune_controller, trial)

        def on_trial_remove(self, tune_controller, trial):
            self._of(trial).on_trial_remove(tune_controller, trial)

    _CLASSES = (StudySearch, Studies, PerStudy)
    return _CLASSES


_CLASSES = None


def run(
    datas: list,
    dims: list,
    store,
    tune_id: str,
    tc,
    trials: int,
    d,
    cpus: float,
    gpus: float,
    ray_dir: Path,
    report,
    cluster,
) -> list[str]:
    """Run the studies of `datas` (nested.StudyData) over the search space `dims` until each holds `trials`
    finished trials, in one Ray Tune experiment on `cluster` (its nodes, orchestrate/cluster.py); returns the
    errors of trials that failed every attempt."""
    import ray
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from hsta_bench.tuning import objective, space

    StudySearch, Studies, PerStudy = _classes()
    metric = f"val_{tc.metric}"
    budget = datas[0].recipe.train.epochs
    entries, schedulers, refs, counts = [], {}, {}, {}
    for data in datas:
        name = data.study.name
        counts[name] = finished(open_study(store, tune_id, data.study))
        if counts[name] >= trials:
            continue
        sampler = TPESampler(seed=tc.seed + data.study.index, n_startup_trials=tc.startup(trials))
        search = StudySearch(
            space=space.distributions(dims),
            metric=metric,
            mode="max",
            sampler=sampler,
            study_name=study_name(tune_id, data.study),
            storage=store,
            budget=budget,
        )
        entries.append((name, search, trials - counts[name]))
        schedulers[name] = ASHAScheduler(
            time_attr="epoch",
            metric=metric,
            mode="max",
            max_t=budget,
            grace_period=tc.grace(budget, datas[0].recipe.train.warmup_epochs),
            reduction_factor=tc.asha.get("reduction_factor", 2),
        )
        refs[name] = ray.put(data)
    total = sum(left for _, _, left in entries)
    if not total:
        return []
    at_once = cluster.require(cpus, gpus, datas[0].model)
    search = ConcurrencyLimiter(Studies(entries, metric), max_concurrent=min(total, at_once))
    trainable = tune.with_resources(
        tune.with_parameters(objective.trainable, data=refs), tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus}])
    )
    ray_dir.mkdir(parents=True, exist_ok=True)
    attempt = len([p for p in ray_dir.iterdir() if p.is_dir()]) + 1
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=PerStudy(schedulers),
            num_samples=total,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=f"attempt-{attempt}",
            storage_path=str(Path(ray_dir).resolve()),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=d.max_failures),
            progress_reporter=None,
            callbacks=[_callback(report, counts, trials, budget, metric)],
        ),
    )
    grid = tuner.fit()  # Ctrl-C: KeyboardInterrupt, handled by the driver
    return [
        f"{r.config.get('study')}: " + (str(r.error).strip().splitlines()[-1] if str(r.error).strip() else "failed")
        for r in grid  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__ and __len__ (no __iter__)
        if r.error is not None
    ]


def _trial_name(trial) -> str:
    return f"{trial.config['study']}-{trial.trial_id}"


def _callback(report, counts: dict, target: int, budget: int, metric: str):
    """A Ray Tune callback that reports each finished trial in one line (Tune calls it in the driver)."""
    from ray import tune

    from hsta_bench.text import params_text

    class Lines(tune.Callback):
        def __init__(self, report):  # an argument, not a closure: the class is pickled, the report must not be
            self.report, self.done, self.last = report, dict(counts), {}

        def __getstate__(self):  # pickled with the experiment's state; the report stays in the driver
            return {"done": self.done, "last": {}}

        def __setstate__(self, state):
            self.__dict__.update(state, report=None)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def on_trial_complete(self, iteration, trials, trial, **info):
            name = trial.config["study"]
            self.done[name] += 1
            result = self.last.get(trial.trial_id, {})
            epoch = result.get("epoch", 0)
            how = "" if epoch >= budget else f", stopped by ASHA at epoch {epoch}"
            if self.report is not None:
                self.report(
                    f"{name} {self.done[name]}/{target}: {metric} {result.get(metric, float('nan')):.3f}{how}  "
                    f"{params_text(trial.config, ' ')}"
                )

        def on_trial_error(self, iteration, trials, trial, **info):
            if self.report is not None:
                self.report(f"{trial.config['study']}: a trial failed ({_last_line(trial)})")

    return Lines(report)


def _last_line(trial) -> str:
    error = getattr(trial, "error_message", None) or ""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "see its error.txt"
