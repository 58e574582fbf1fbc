"""The live view of a run's trials (instead of Ray Tune's own table): counts of done / running / failed /
pending trials, folds done, elapsed time and an ETA, and one row per running trial.

On a terminal it is a rich Live display; otherwise (a log file, CI) each event is one line. The executors
call started / progress / finished / failed from the driver (Ray Tune callbacks run there).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

WAITING, RUNNING, DONE, FAILED, RETRYING = "pending", "running", "done", "failed", "retrying"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TrialView:
    def __init__(self, trials, console, describe=None, already: dict | None = None, clock=time.perf_counter):
        """`trials`: every trial of the run still to run; `already`: folds of them finished before (resume);
        `clock`: seconds (a test's own)."""
        self.clock = clock
        self.console = console
        self.live_mode = console.is_terminal
        self.describe = describe or (lambda t: t.describe())
        self.order = [t.name for t in trials]
        self.trials = {t.name: t for t in trials}
        self.status = {t.name: WAITING for t in trials}
        self.folds = {t.name: (already or {}).get(t.name, 0) for t in trials}
        self.began: dict[str, float] = {}
        self.attempts = {t.name: 0 for t in trials}
        self.errors: dict[str, str] = {}
        self.started_at = self.clock()
        self.trained: dict[str, int] = {}  # folds each trial trained in this attempt (for its fold time)
        self.fold_seconds: dict[str, float] = {}  # per model: the latest measured seconds a fold of its trials
        self.logged_at = self.started_at  # when a progress line was last written (not on a terminal)
        self.logged_share = 0  # tenths of the folds done at that line
        self.lock = threading.Lock()

    # events -------------------------------------------------------------------------------------------
    def started(self, name: str) -> None:
        with self.lock:
            self.status[name] = RUNNING
            self.began[name] = self.clock()
            self.attempts[name] += 1
            self.trained[name] = 0
        again = f" (attempt {self.attempts[name]})" if self.attempts[name] > 1 else ""
        self._log(f"start  {self.describe(self.trials[name])}{again}")

    def progress(self, name: str, done: int, total: int) -> None:
        with self.lock:
            before = self.folds[name]
            self.folds[name] = done
            if done > before and name in self.began:
                self.trained[name] = self.trained.get(name, 0) + done - before
                model = self.trials[name].model
                seconds = (self.clock() - self.began[name]) / self.trained[name]
                self.fold_seconds[model] = seconds
        if done > before and not self.live_mode and self._due():
            self._log(f"       {self.describe(self.trials[name])}: {done}/{total} folds  {self._totals()}")

    def _due(self) -> bool:
        """Whether a progress line is due in a log: a tenth more of the folds done, or ten minutes after the last
        line (a 68-fold run writes about ten lines, not one per fold)."""
        with self.lock:
            share = 10 * sum(self.folds.values()) // max(1, sum(len(t.folds) for t in self.trials.values()))
            now = self.clock()
            if now - self.logged_at < 600 and share == self.logged_share:
                return False
            self.logged_at, self.logged_share = now, share
            return True

    def finished(self, name: str) -> None:
        with self.lock:
            self.status[name] = DONE
            self.folds[name] = len(self.trials[name].folds)
        self._log(
            f"done   {self.describe(self.trials[name])} in {_clock(self.clock() - self.began[name])}  {self._totals()}"
        )

    def failed(self, name: str, error: str, final: bool) -> None:
        with self.lock:
            self.status[name] = FAILED if final else RETRYING
            self.errors[name] = error
        what = "failed" if final else "retry "
        self._log(f"{what} {self.describe(self.trials[name])}: {error}")

    # rendering ----------------------------------------------------------------------------------------
    def counts(self) -> dict:
        with self.lock:
            counts = {s: 0 for s in (DONE, RUNNING, RETRYING, FAILED, WAITING)}
            for s in self.status.values():
                counts[s] += 1
            return counts

    def eta(self) -> float | None:
        """Seconds left, from measured fold times: each unfinished trial's folds left times its model's latest
        measured seconds a fold (a trial's time over the folds it has trained, which counts its start), spread
        over the trials running at once. None (shown as -:--:--) until every model left has a fold measured:
        a model's first fold, not another model's, says how long its folds take."""
        with self.lock:
            left, running = 0.0, 0
            for name, trial in self.trials.items():
                if self.status[name] in (DONE, FAILED):
                    continue
                running += self.status[name] in (RUNNING, RETRYING)
                fold = self.fold_seconds.get(trial.model)
                if fold is None:
                    return None
                left += (len(trial.folds) - self.folds[name]) * fold
                if self.status[name] == RUNNING and name in self.began:  # its current fold is under way
                    into = self.clock() - self.began[name] - self.trained.get(name, 0) * fold
                    left -= min(fold, max(0.0, into))
        return max(0.0, left / max(1, running))

    def _totals(self) -> str:
        c = self.counts()
        with self.lock:
            folds = sum(self.folds.values())
            total = sum(len(t.folds) for t in self.trials.values())
        return (
            f"[trials {c[DONE]}/{len(self.order)} done, {c[RUNNING]} running, {c[FAILED]} failed; folds "
            f"{folds}/{total}; "
            f"{_clock(self.clock() - self.started_at)} elapsed, ETA {_clock(self.eta())}]"
        )

    def _log(self, text: str) -> None:
        if not self.live_mode:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif text.startswith(("failed", "retry")):  # the live display shows the rest; failures stay on screen
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __rich__(self):
        c = self.counts()
        with self.lock:
            folds = sum(self.folds.values())
            total = sum(len(t.folds) for t in self.trials.values())
            running = [n for n in self.order if self.status[n] in (RUNNING, RETRYING)]
        head = Text.assemble(
            ("trials ", "bold"),
            (f"{c[DONE]} done", "green"),
            "  ",
            (f"{c[RUNNING]} running", "cyan"),
            "  ",
            (f"{c[FAILED]} failed", "red" if c[FAILED] else "dim"),
            "  ",
            (f"{c[WAITING]} pending", "dim"),
            f"   folds {folds}/{total}   elapsed {_clock(self.clock() - self.started_at)}   ETA {_clock(self.eta())}",
        )
        table = Table(box=None, show_header=bool(running), pad_edge=False)
        for column in ("model", "dataset", "folds", "time", ""):
            table.add_column(column, no_wrap=True)
        now = self.clock()
        for name in running[:12]:
            t = self.trials[name]
            state = (
                "retrying"
                if self.status[name] == RETRYING
                else (f"attempt {self.attempts[name]}" if self.attempts[name] > 1 else "")
            )
            table.add_row(
                t.model, t.dataset, f"{self.folds[name]}/{len(t.folds)}", _clock(now - self.began.get(name, now)), state
            )
        if len(running) > 12:
            table.add_row(f"... {len(running) - 12} more", "", "", "", "")
        return Group(head, table)

    @contextmanager
    def shown(self):
        """Show the view while the block runs (a live display on a terminal)."""
        if not self.live_mode:
            yield self
            return

        with Live(self, console=self.console, refresh_per_second=4, transient=True):
            yield self
        self.console.print(Text(self._totals()))
