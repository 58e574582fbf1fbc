"""A tune's studies in Optuna: each lives in an Optuna RDB storage (SQLite next to the tune) so that a tune
resumes where it stopped. Optuna's TPE proposes and Ray Tune runs the trials (ASHA stops the weak ones early)
in searchers.py, which imports Ray; this module does not (report.py reads the studies without it).

    <tune>/study.db        one Optuna study per nested study, named <tune_id>/<study> (g0, g1, ..., all)
                           (or in the database tune.storage names)
    <tune>/ray/attempt-N/  Ray Tune's experiment (all studies in one) and each trial's results

Finished trials are those Optuna marks COMPLETE (trained the whole epoch budget) or PRUNED (stopped by ASHA;
their value is the score at the epoch they reached). A study runs until it holds `trials` finished trials:
trials left RUNNING by a killed tune are marked FAIL on resume and replaced.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from hsta_bench.errors import UserError


def storage(path: Path, url: str | None = None):
    """Optuna's RDB storage: `url` (tune.storage) when given, else SQLite at `path`."""
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
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name(tune_id, study), storage=store)
    except KeyError:
        return None


def finished(s) -> int:
    return len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
