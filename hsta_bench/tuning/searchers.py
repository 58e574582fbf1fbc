"""The studies of a tune, run: Optuna's TPE proposes, Ray Tune runs the trials (ASHA stops the weak ones early),
every study behind one Tune experiment; what each study holds stays in its Optuna storage (studies.py).

    <tune>/ray/attempt-N/  Ray Tune's experiment (all studies in one) and each trial's results

The one module of tuning/ that imports Ray and Ray Tune's Optuna searcher at its top: only the tune driver
(driver.py) imports it, so that a command that does not tune (and `--help`) never imports Ray.
"""

from __future__ import annotations

from pathlib import Path

import ray
from optuna.samplers import TPESampler
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from hsta_bench.text import params_text
from hsta_bench.tuning import objective, space
from hsta_bench.tuning.studies import finished, open_study, study_name


class StudySearch(OptunaSearch):
    """Ray Tune's OptunaSearch for one study, with what it records completed: a trial ASHA stopped before the
    budget is PRUNED (TPE ranks it by the epoch it reached, and it is never the best), its last score is kept
    as an intermediate value, and its epochs and the subjects it saw are user attributes (what the leakage
    test reads). It reads OptunaSearch's private `_ot_trials`, `_completed_trials` and `_ot_study`
    (tests/test_tuning.py pins the Ray it was written against)."""

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
    """Several studies behind one Tune experiment: each in turn is asked for the trials it still needs, and
    every result goes back to the study that proposed it. One experiment keeps the workers warm and the slots
    full across studies; each study keeps its own TPE model of its own trials."""

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
    """One ASHA per study behind one Tune experiment: trials are stopped against their own study's trials
    only (comparing across studies would let a held-out subject's validation scores decide)."""

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


class Lines(tune.Callback):
    """A Ray Tune callback that reports each finished trial in one line (Tune calls it in the driver):
    `counts` the finished trials each study held before, `target` the trials a study runs to, `budget` the
    epochs of a trial that ASHA did not stop, `metric` the one it reports."""

    def __init__(self, report, counts: dict, target: int, budget: int, metric: str):
        self.report, self.done = report, dict(counts)
        self.last: dict[str, dict] = {}
        self.target, self.budget, self.metric = target, budget, metric

    def __getstate__(self):  # pickled with the experiment's state; the report stays in the driver
        return {"done": self.done, "last": {}, "target": self.target, "budget": self.budget, "metric": self.metric}

    def __setstate__(self, state):
        self.__dict__.update(state, report=None)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result

    def on_trial_complete(self, iteration, trials, trial, **info):
        name = trial.config["study"]
        self.done[name] += 1
        result = self.last.get(trial.trial_id, {})
        epoch = result.get("epoch", 0)
        how = "" if epoch >= self.budget else f", stopped by ASHA at epoch {epoch}"
        if self.report is not None:
            self.report(
                f"{name} {self.done[name]}/{self.target}: {self.metric} "
                f"{result.get(self.metric, float('nan')):.3f}{how}  {params_text(trial.config, ' ')}"
            )

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.report is not None:
            self.report(f"{trial.config['study']}: a trial failed ({_last_line(trial)})")


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
            reduction_factor=tc.asha.reduction_factor,
        )
        refs[name] = ray.put(data)
    total = sum(left for _, _, left in entries)
    if not total:
        return []
    at_once = cluster.require(cpus, gpus, datas[0].model)
    limited = ConcurrencyLimiter(Studies(entries, metric), max_concurrent=min(total, at_once))
    trainable = tune.with_resources(
        tune.with_parameters(objective.trainable, data=refs), tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus}])
    )
    ray_dir.mkdir(parents=True, exist_ok=True)
    attempt = len([p for p in ray_dir.iterdir() if p.is_dir()]) + 1
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=limited,
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
            callbacks=[Lines(report, counts, trials, budget, metric)],
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


def _last_line(trial) -> str:
    error = getattr(trial, "error_message", None) or ""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "see its error.txt"
