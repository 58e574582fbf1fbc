"""Benchmarks report ratios against a baseline measured in the same run (never timed assertions).

Each benchmark records its best time with `timings.record(group, name, seconds)`; at the end of the
session every group prints each case's speed-up over the case named `baseline` in that group, beside
the goal the issue set. pytest-benchmark's own table (`make bench`) has the full statistics.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

_RESULTS: dict[str, dict[str, float]] = defaultdict(dict)
_GOALS: dict[tuple[str, str], float] = {}
_NOTES: dict[str, list[str]] = defaultdict(list)


class Timings:
    def record(self, group: str, name: str, seconds: float, goal: float | None = None) -> None:
        _RESULTS[group][name] = min(seconds, _RESULTS[group].get(name, float("inf")))
        if goal is not None:
            _GOALS[(group, name)] = goal

    def best(self, group: str, name: str) -> float:
        return _RESULTS[group][name]

    def note(self, group: str, text: str) -> None:
        """A line printed under the group: the reason behind the numbers (ceilings, FLOPs, skips)."""
        _NOTES[group].append(text)

    def timed(self, group: str, name: str, fn, goal: float | None = None):
        """Wrap `fn` so that every call's wall time is recorded (the best one counts)."""

        def run(*args, **kwargs):
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self.record(group, name, time.perf_counter() - start, goal)
            return result

        return run


@pytest.fixture(scope="session")
def timings() -> Timings:
    return Timings()


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS and not _NOTES:
        return
    terminalreporter.section("speed-ups against the baseline of each group (best of the rounds run)")
    for group in dict.fromkeys([*_RESULTS, *_NOTES]):
        cases = _RESULTS.get(group, {})
        base = cases.get("baseline")
        for name, seconds in cases.items():
            line = f"{group:28s} {name:22s} {seconds:9.3f} s"
            if base and name != "baseline":
                ratio = base / seconds
                goal = _GOALS.get((group, name))
                line += f"   {ratio:7.2f}x the baseline" + (
                    f" (goal >= {goal}x: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
                )
            terminalreporter.write_line(line)
        for text in _NOTES.get(group, []):
            terminalreporter.write_line(f"{group:28s} {text}")
