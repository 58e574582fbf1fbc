"""Helpers shared by the tests (import them from here, not from conftest: tests/benchmarks has its own)."""

from __future__ import annotations

import os
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


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed command line as a user would: a separate process, text output (`env`: extra
    environment variables; `cwd`: where to run it)."""
    return subprocess.run(
        [sys.executable, "-m", "hsta_bench", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd,
    )


def run_main(capsys, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command's own entry point (what the console script calls) in this process: as run_cli, without
    starting an interpreter, for commands that hold no global state (`capsys`: pytest's fixture)."""
    from hsta_bench.cli import main

    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["hsta-bench", *args]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        capsys.readouterr()
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, exactly one line on stderr naming what is wrong, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
