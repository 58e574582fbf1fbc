"""The same smoke workload through `hsta-bench run` three ways: in this process (the baseline), through a
local Ray instance with one CPU (one trial at a time: Ray's overhead), and with two CPUs (two trials at once).

Goals (issue 6): Ray's overhead under 15% (one-at-a-time Ray >= 0.87x the baseline's speed); two trials in
parallel on this 2-core machine bring the wall time down accordingly (the ratio is reported).
Each case is the whole command as a user runs it (Ray's start and stop included), on warm caches; all three
must give the same predictions, logits included (one test, so the check never depends on test order).
`make bench` times the smoke workload of `make demo` (every dataset, every model of the smoke preset:
minutes per case); `make test` runs a small part of it, which checks the three agree but is too short to
amortise Ray's fixed start and stop (no goal judged there).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import polars as pl
import pytest

from hsta_bench import config
from hsta_bench.engine.evaluate import plan

FULL = (config.load()["presets"]["smoke"]["models"], None)  # HSTA and the baselines, --all-datasets
PART = (["ststnet", "off_apexnet", "hsta_tiny"], ["casme2"])  # `make test`: one dataset, three models
CASES = [
    ("baseline", ["--in-process"], None),
    ("ray, 1 trial at a time", ["--set", "dispatch.num_cpus=1"], 1 / 1.15),
    ("ray, 2 trials at once", ["--set", "dispatch.num_cpus=2"], None),
]


@pytest.fixture(scope="module")
def workload(request):
    """(models, datasets or None for all), with stand-ins written and inputs prepared, so every case times
    training and dispatch only."""
    from hsta_bench.data import list_sources

    options = request.config.getoption
    full = options("benchmark_enable") or not options("benchmark_disable")  # pytest-benchmark's own rule
    models, datasets = FULL if full else PART
    cfg = config.load()
    for model in models:
        for dataset in datasets or list_sources():
            try:
                plan(model, dataset, cfg, "smoke")
            except Exception:  # noqa: BLE001 - a pair the dataset cannot give inputs for is skipped by run too
                continue
    return models, datasets, full


@pytest.mark.slow
def test_run_in_process_and_through_ray(timings, workload, tmp_path):
    """The three cases in turn, in one test: the check that they agree cannot be left out by running a part
    of them (each case is one whole command, timed once: pytest-benchmark's rounds would add nothing)."""
    models, datasets, full = workload
    group = "run smoke workload (wall)" if full else "run part of the smoke workload (wall)"
    predictions = {}
    for name, args, goal in CASES:
        out = tmp_path / name.replace(" ", "-").replace(",", "")
        command = [
            sys.executable,
            "-m",
            "hsta_bench",
            "run",
            *([a for d in datasets for a in ("--dataset", d)] if datasets else ["--all-datasets"]),
            *[a for m in models for a in ("--model", m)],
            "--preset",
            "smoke",
            "--set",
            "evaluation.bootstrap=100",
            "--output",
            str(out),
            "--json",
            *args,
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
        timings.record(group, name, time.perf_counter() - start, goal if full else None)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_id = json.loads(proc.stdout)["run_id"]
        run = json.loads((out / run_id / "run.json").read_text())
        if name != "baseline":
            assert run["dispatch"]["cpus"] == (1 if "1 trial" in name else 2)
            timings.note(
                group,
                f"{name}: Ray started in {run['dispatch']['start_seconds']:.1f} s, "
                f"stopped in {run['dispatch']['stop_seconds']:.1f} s",
            )
        predictions[name] = pl.read_parquet(out / run_id / "predictions.parquet").sort("model", "dataset", "sample_id")
    first, *others = predictions.values()
    assert all(first.equals(other) for other in others)  # the executor changes nothing, to the last bit of a logit
    timings.note(
        group,
        f"{sum(e['folds'] for e in run['evaluations'])} folds, same logits in all three; "
        f"{len(run['trials'])} trials with 2 CPUs"
        + ("" if full else "; too short to amortise Ray's start and stop (`make bench` times the whole workload)"),
    )
