"""Helpers shared by the tests (import them from here, not from conftest: tests/benchmarks has its own)."""

from __future__ import annotations

import contextlib
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


def run_cli(
    *args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the installed command line as a user would: a separate process, text output (`env`: extra
    environment variables; `cwd`: where to run it)."""
    return subprocess.run(
        [sys.executable, "-m", "hsta_bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
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
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def untrained_logits(plan, index: int):
    """The test logits of fold `index` of `plan` from its model as initialised, before any step (the same seed
    as its training): what a trained model's logits are measured against, to show that training moved them."""
    import torch

    from hsta_bench.engine import train
    from hsta_bench.models import create_model

    torch.manual_seed(plan.fold_seed(index))
    model = create_model(plan.model, len(plan.classes), **plan.recipe_of(index).overrides)
    return train.predict(model, plan.inputs, plan.folds[index].test, "cpu")


def kill_group(pgid: int) -> None:
    """Whatever is left of a process group (Ray's helper processes outlive a SIGKILLed driver)."""
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_cluster(logs: Path, head: list[str], nodes: list[list[str]] = (), env: dict | None = None):
    """A Ray cluster started as a user starts one: `ray start --head` (its own port and temp dir; `ray start`
    in the default one leaves /tmp/ray/ray_current_cluster behind, which a later plain ray.init() would
    try to join), then `ray start --address` for each of `nodes` (a second raylet on this host is a node of
    its own to Ray). Yields the head's address; stops every process when done."""
    import shutil
    import signal
    import time

    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    temp = Path("/tmp") / f"hsta-ray-{port}"  # short: Ray's socket paths must fit in 107 bytes
    started = []

    def start(args: list[str], log: Path, extra: dict) -> None:
        with open(log, "w") as sink:
            proc = subprocess.Popen(
                [str(ray), "start", *args, "--disable-usage-stats", "--block"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                env={**os.environ, **(env or {}), **extra},
            )
        started.append(proc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and "Ray runtime started" not in log.read_text():
            time.sleep(0.5)
        assert proc.poll() is None and "Ray runtime started" in log.read_text(), log.read_text()[-2000:]

    try:
        start(
            ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", *head],
            logs / "ray-head.log",
            {},
        )
        for i, args in enumerate(nodes):  # the head enables token authentication: a joining node sends it too
            start([f"--address=127.0.0.1:{port}", *args], logs / f"ray-node-{i + 1}.log", {"RAY_AUTH_MODE": "token"})
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            kill_group(proc.pid)
        shutil.rmtree(temp, ignore_errors=True)
