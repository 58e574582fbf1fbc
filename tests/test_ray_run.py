"""`hsta-bench run` through Ray: a driver killed with SIGKILL mid-run and resumed, and a run on a second,
separately started Ray instance joined with --address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from helpers import kill_group, ray_cluster, run_cli

pytestmark = pytest.mark.slow

WORKLOAD = [
    "--dataset",
    "casme2",
    "--dataset",
    "samm",
    "--model",
    "ststnet",
    "--model",
    "off_apexnet",
    "--preset",
    "smoke",
    "--set",
    "presets.smoke.train.epochs=6",
    "--set",
    "evaluation.bootstrap=50",
]


def _still_running(pgid: int, wait: float) -> list[str]:
    """The live processes of a group (zombies waiting to be reaped do not count), polled for up to `wait`
    seconds until there are none: a process that is exiting may take a moment on a loaded machine."""
    deadline = time.monotonic() + wait
    while True:
        listed = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True, text=True).stdout
        live = [line.split()[0] for line in listed.splitlines() if line.split() and not line.split()[1].startswith("Z")]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.2)


def _fragments(output: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in output.rglob("fold-*.parquet")}


def _started_run(output: Path) -> subprocess.Popen:
    """A driver running WORKLOAD in a session of its own, returned once two folds are on disk (still running:
    what is done to it next lands mid-run). Its stderr goes to `<output>.stderr` (a pipe nobody reads could
    fill up and stop it)."""
    with open(f"{output}.stderr", "w") as sink:
        driver = subprocess.Popen(
            [sys.executable, "-m", "hsta_bench", "run", *WORKLOAD, "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while len(_fragments(output)) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if driver.poll() is not None:
        kill_group(driver.pid)
        pytest.fail(f"the run ended before it could be stopped: {Path(f'{output}.stderr').read_text()[-2000:]}")
    return driver


def test_a_run_killed_with_sigkill_resumes_with_every_fold_exactly_once(tmp_path):
    output = tmp_path / "runs"
    driver = _started_run(output)
    try:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        kill_group(driver.pid)
    before = _fragments(output)
    (run_dir,) = output.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "running" and len(run["trials"]) == 8
    total = 38 + 31  # casme2 + samm stand-in samples, per model
    assert 0 < len(before) < 10 + 10

    resumed = run_cli("run", "--resume", run_dir.name, "--output", str(output), "--json", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    predictions = pl.read_parquet(run_dir / "predictions.parquet")
    assert predictions.height == 2 * total
    assert predictions.select("model", "dataset", "sample_id").is_unique().all()
    splits = pl.read_parquet(run_dir / "splits.parquet").filter(pl.col("role") == "test")
    for model in ("ststnet", "off_apexnet"):  # every (model, dataset, fold) there, with all its test samples
        mine = predictions.filter(pl.col("model") == model).select("dataset", "fold", "sample_id").sort(pl.all())
        assert mine.equals(splits.select("dataset", "fold", "sample_id").sort(pl.all()))
    after = _fragments(output)
    assert len(after) == 20
    finished_before = [p for p in before if p in after]
    assert all(after[p] == before[p] for p in finished_before)  # folds done before the kill were not redone
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and len(run["resumed"]) == 1


def test_ctrl_c_stops_the_run_cleanly_and_resume_finishes_it(tmp_path):
    output = tmp_path / "runs"
    driver = _started_run(output)
    try:
        sent = time.monotonic()
        driver.send_signal(signal.SIGINT)
        driver.wait(60)
        stopped = time.monotonic() - sent
        left = _still_running(driver.pid, 10)  # asked before anything here kills the group
    finally:
        kill_group(driver.pid)
    stderr = Path(f"{output}.stderr").read_text()
    assert driver.returncode == 130 and "Traceback" not in stderr, stderr
    assert stopped < 30  # trials are stopped, not left to finish
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted" in errors[0] and "--resume" in errors[0]
    assert left == []  # Ray's processes stopped with the run
    (run_dir,) = output.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    resumed = run_cli("run", "--resume", run_dir.name, "--output", str(output), "--json", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    predictions = pl.read_parquet(run_dir / "predictions.parquet")
    assert predictions.height == 2 * (38 + 31) and predictions.select("model", "dataset", "sample_id").is_unique().all()


@pytest.fixture
def second_ray_instance(tmp_path):
    """A Ray head started on its own (one CPU, its own port), as a user's cluster would be."""
    with ray_cluster(tmp_path, ["--num-cpus=1"]) as address:
        yield address


def test_a_run_joins_a_separately_started_ray_instance_with_address(second_ray_instance, tmp_path):
    """...with a model of the user's own (--import, from the folder the command runs in): the instance's
    workers, started before the run and not from it, get its code and its name through the run's runtime env."""
    from test_plugins import USER_MODULE

    here = tmp_path / "user"
    here.mkdir()
    (here / "user_module.py").write_text(USER_MODULE)
    proc = run_cli(
        "run",
        "--dataset",
        "casme2",
        "--model",
        "off_apexnet",
        "--import",
        "user_module",
        "--model",
        "user_net",
        "--preset",
        "smoke",
        "--set",
        "evaluation.bootstrap=50",
        "--address",
        second_ray_instance,
        "--output",
        str(tmp_path),
        "--json",
        timeout=600,
        cwd=here,
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads((tmp_path / json.loads(proc.stdout)["run_id"] / "run.json").read_text())
    dispatch = run["dispatch"]
    assert dispatch["executor"] == "ray" and dispatch["joined"] is True
    assert dispatch["address"].endswith(second_ray_instance.rsplit(":", 1)[1])  # that instance's port
    assert dispatch["cpus"] == 1  # the second instance's CPUs, not this machine's
    assert len(run["trials"]) == 2  # one slot there: one trial per evaluation
    assert run["status"] == "finished" and run["imports"] == ["user_module"]
    assert [e["model"] for e in run["evaluations"]] == ["off_apexnet", "user_net"]


def test_ray_retries_a_failed_trial_then_reports_it_with_its_traceback(tmp_path):
    proc = run_cli(
        "run",
        "--dataset",
        "casme2",
        "--model",
        "ststnet",
        "--model",
        "off_apexnet",
        "--preset",
        "smoke",
        "--set",
        "evaluation.bootstrap=50",
        "--set",
        "dispatch.max_failures=1",
        "--set",  # folds one by one: ststnet's trial g1 exists whatever fold_batch auto's probe measures under load
        "train.fold_batch=never",
        "--output",
        str(tmp_path),
        "--json",
        env={"HSTA_BENCH_FAULTS": "ststnet/*/g1=3"},
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    assert "retry  ststnet on casme2" in proc.stderr and "(attempt 2)" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "injected fault 2 of 3" in errors[0] and "Traceback" not in proc.stderr
    run_dir = tmp_path / json.loads(proc.stdout)["run_id"]
    (log,) = (run_dir / "logs").glob("failed-ststnet_casme2_*_g1.txt")
    assert "injected fault 2 of 3" in log.read_text()  # Ray Tune's error.txt of the last attempt
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and [e["model"] for e in run["evaluations"] if e.get("complete")] == [
        "off_apexnet"
    ]
