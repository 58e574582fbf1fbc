"""`prepare` on real frames: the nine real clips (../shared/data/real-clips, laid out as CASME II, SAMM and SMIC
are distributed by tests/realclips.py), every input a video dataset gives (frames, special, flow), MTCNN crops.

Reported: frames read per second per worker, cold with one worker (the baseline) and with two, and a warm
cache (nothing computed); the speed-ups are against the one-worker cold run of the same session. Each of
the three datasets is prepared on its own (three samples each), so a second worker costs more to start (its
process, its MTCNN) than it saves here; on a whole dataset it pays (test_prepare_bench.py). The clips
are 128 px crops, smaller than the datasets' frames (CASME II 640x480, SAMM 960x650), so per-frame costs on
the real datasets are higher; TV-L1 at 128 px is per sample, not per frame. No goal is judged here.
"""

from __future__ import annotations

import shutil

import pytest

from hsta_bench import config
from hsta_bench.preprocess import prepare
from hsta_bench.preprocess.cache import cache_root
from hsta_bench.preprocess.pipeline import _files
from hsta_bench.preprocess.settings import from_config
from realclips import DATASETS, data_roots, lay_out, needs_real_clips

pytestmark = [needs_real_clips, pytest.mark.slow]
GROUP = "prepare real clips"
# a margin of its own, so no other test shares these caches
SETTINGS = ["preprocess.face_crop=mtcnn", "preprocess.crop_margin=0.17"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return data_roots(lay_out(tmp_path_factory.mktemp("real")))


def _prepare_all(roots: list[str], workers: int) -> list:
    cfg = config.load(sets=[*SETTINGS, f"preprocess.workers={workers}"], data_roots=roots)
    return [prepare(name, cfg) for name in DATASETS]


def _clear() -> None:
    for name in DATASETS:
        shutil.rmtree(cache_root() / name, ignore_errors=True)


def test_prepare_real_frames_cold_and_warm(roots, timings):
    frames = 0
    for workers, name in ((1, "baseline"), (2, "2 workers")):  # both cold
        _clear()
        reports = timings.timed(GROUP, name, lambda w=workers: _prepare_all(roots, w))()
        assert all(set(r.computed) == {"frames", "special", "flow"} for r in reports)
        s = from_config(config.load(sets=SETTINGS))
        frames = sum(len(_files(x, s)) for r in reports for x in r.manifest.usable.to_dicts())
        seconds = timings.best(GROUP, name)
        per_worker = frames / seconds / workers
        timings.note(GROUP, f"{name} (cold): {frames} frames read, {per_worker:.1f} frames/s per worker")
    warm = timings.timed(GROUP, "warm cache", lambda: _prepare_all(roots, 2))()
    assert all(r.computed == [] for r in warm)
    timings.note(GROUP, f"warm cache: {frames / timings.best(GROUP, 'warm cache'):.0f} frames/s (nothing computed)")
