"""Shared fixtures: an isolated hsta-bench home and cached synthetic stand-ins (helpers are in helpers.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The suite's numbers are CPU numbers (exact reproducibility, fp32): on a machine with a GPU, every test, the
# commands it runs and their Ray workers see none, so `device: auto` means the CPU there as here. The tests
# marked `cuda` are the GPU's: `HSTA_BENCH_TEST_CUDA=1 pytest -m cuda` leaves the GPUs visible for them.
if os.environ.get("HSTA_BENCH_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(scope="session", autouse=True)
def hsta_home(tmp_path_factory) -> Path:
    """Every test (and every CLI it runs) writes stand-ins and caches under one temporary home."""
    home = tmp_path_factory.mktemp("hsta-home")
    old = os.environ.get("HSTA_BENCH_HOME")
    os.environ["HSTA_BENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("HSTA_BENCH_HOME", None)
    else:
        os.environ["HSTA_BENCH_HOME"] = old


@pytest.fixture(scope="session")
def cfg():
    from hsta_bench import config

    return config.load()


@pytest.fixture
def standin_copy(cfg, tmp_path):
    """standin_copy(name) -> a private copy of the stand-in of `name`, free to damage."""
    from hsta_bench.data.synth import standin

    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(standin(name, cfg), dest)
        return dest

    return make
