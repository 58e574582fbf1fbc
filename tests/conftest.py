"""Shared fixtures: an isolated hsta-bench home, cached synthetic stand-ins, and the real data in ../shared."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FLOW = (REPO / ".." / "shared" / "data" / "megc2019-composite").resolve()

realdata = pytest.mark.skipif(
    not (SHARED_FLOW / "combined_3_class2_for_optical_flow.csv").is_file(),
    reason=f"real MEGC2019 composite not found at {SHARED_FLOW}",
)


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


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed command line as a user would: a separate process, text output."""
    return subprocess.run(
        [sys.executable, "-m", "hsta_bench", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, exactly one line on stderr naming what is wrong, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
