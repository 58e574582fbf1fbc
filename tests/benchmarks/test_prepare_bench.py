"""`prepare` on a synthetic stand-in: one worker (the baseline), two workers, and a warm cache.

Goals (issue 3): two workers at least 1.7x one; a warm-cache run at least 20x faster than a cold one.
Run with `make bench` for statistics; `make test` runs each case once.
"""

from __future__ import annotations

import shutil

import pytest

from hsta_bench import config
from hsta_bench.preprocess import prepare
from hsta_bench.preprocess.cache import cache_root

DATASET = "casme2"
# the released sizes (224 px frames, TV-L1 on 128 px), with a margin of its own so no other test shares the cache
SETTINGS = ["preprocess.crop_margin=0.13"]
GROUP = f"prepare {DATASET} (cold)"


def cfg(workers: int):
    return config.load(sets=[*SETTINGS, f"preprocess.workers={workers}"])


def clear():
    shutil.rmtree(cache_root() / DATASET, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def standin_ready():
    prepare(
        DATASET, config.load(sets=[*SETTINGS, "preprocess.inputs=[flow]", "preprocess.flow.size=8"])
    )  # writes the stand-in


@pytest.mark.slow
@pytest.mark.parametrize("workers,name,goal", [(1, "baseline", None), (2, "2 workers", 1.7)])
def test_prepare_cold(benchmark, timings, workers, name, goal):
    run = timings.timed(GROUP, name, lambda: prepare(DATASET, cfg(workers)), goal)
    benchmark.group = GROUP
    report = benchmark.pedantic(run, setup=clear, rounds=3, iterations=1)
    assert set(report.computed) == {"frames", "special", "flow"}


@pytest.mark.slow
def test_prepare_warm(benchmark, timings):
    clear()
    cold = timings.timed("prepare casme2 (warm vs cold)", "baseline", lambda: prepare(DATASET, cfg(2)))
    assert cold().computed
    warm = timings.timed("prepare casme2 (warm vs cold)", "warm cache", lambda: prepare(DATASET, cfg(2)), 20)
    benchmark.group = "prepare casme2 (warm)"
    report = benchmark.pedantic(warm, rounds=5, iterations=1)
    assert report.computed == []
