"""scripts/gpu_checks.py and scripts/gpu_check.sh: every check at tiny sizes on the CPU (what each writes),
the one line a check gives where CUDA is asked for and absent, and the shell script reporting a failed and a
timed-out step, running the next and writing its summary. With a CUDA device (`HSTA_BENCH_TEST_CUDA=1 pytest -m
cuda`: tests/conftest.py hides GPUs otherwise) the checks also run on the GPU; elsewhere that test is skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (HSTA_BENCH_TEST_CUDA=1 on a GPU)")
without_cuda = pytest.mark.skipif(CUDA, reason="what a machine without a CUDA device reports")
SMALL = ["--model", "ststnet", "--model", "c3d"]  # two of them, to stay fast (the script runs all of SMALL_MODELS)


@pytest.fixture(scope="module")
def checks():
    spec = importlib.util.spec_from_file_location("gpu_checks", REPO / "scripts" / "gpu_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_checks(checks, out: Path, device: str) -> dict:
    extra = {"small-steps": SMALL}
    return {
        name: checks.main([name, "--device", device, "--quick", "--out", str(out), *extra.get(name, [])])
        for name in ("env", "fold-batch", "hsta-step", "small-steps")
    }


@pytest.fixture(scope="module")
def on_cpu(checks, tmp_path_factory):
    """One thread: tiny steps gain nothing from two, and on a busy machine OpenMP's waiting threads cost ~5x."""
    out = tmp_path_factory.mktemp("gpu-checks-cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return out, run_checks(checks, out, "cpu")
    finally:
        torch.set_num_threads(threads)


def read(out: Path, name: str) -> dict:
    assert (out / f"{name}.md").is_file()
    return json.loads((out / f"{name}.json").read_text())


def test_env_reports_torch_cuda_and_the_optional_libraries(on_cpu):
    out, codes = on_cpu
    assert codes["env"] == 0
    env = read(out, "env")
    assert env["torch"] == torch.__version__ and env["cuda_available"] == CUDA
    assert {"ray", "polars", "yaml", "numpy"} <= set(env["modules"])


def test_fold_batched_logits_equal_sequential_and_both_are_timed(on_cpu):
    out, codes = on_cpu
    doc = read(out, "fold-batch")
    assert codes["fold-batch"] == 0 and doc["ok"] and doc["device"] == "cpu"
    assert [e["model"] for e in doc["equality"]] == ["ststnet", "off_apexnet"]
    for e in doc["equality"]:
        assert e["agree"] and e["same_predictions"] and e["max_abs_diff"] <= e["atol"] and e["precision"] == "fp32"
    for s in doc["speed"]:
        assert s["sequential_s"] > 0 and s["fold_batched_s"] > 0 and s["speedup"] > 0 and s["finite"]


def test_hsta_step_times_fp32_and_bf16_on_both_staging_paths(on_cpu):
    out, codes = on_cpu
    doc = read(out, "hsta-step")
    assert codes["hsta-step"] == 0 and doc["ok"]
    assert {(r["precision"], r["staging"]) for r in doc["rows"]} == {
        (p, s) for p in ("fp32", "bf16") for s in ("device", "host")
    }
    for row in doc["rows"]:
        assert row["status"] == "ok" and row["step_ms"] > 0 and row["samples_per_s"] > 0 and row["finite"]
        assert row["staging_used"] == "host"  # a CPU has nothing to stage onto (the CUDA test checks both)


def test_small_models_step_in_bf16_and_fp32(on_cpu):
    out, codes = on_cpu
    doc = read(out, "small-steps")
    assert codes["small-steps"] == 0 and doc["ok"]
    assert {(r["model"], r["precision"]) for r in doc["rows"]} == {
        (m, p) for m in ("ststnet", "c3d") for p in ("bf16", "fp32")
    }
    assert all(r["step_ms"] > 0 and r["samples_per_s"] > 0 for r in doc["rows"])


@without_cuda
def test_cuda_asked_for_without_cuda_is_one_line(checks, tmp_path, capsys):
    for name in ("fold-batch", "hsta-step", "small-steps"):
        assert checks.main([name, "--out", str(tmp_path)]) == 2  # --device cuda is the default
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "sees no CUDA device" in err[0] and err[0].startswith(f"gpu_checks {name}:")
    assert checks.main(["env", "--out", str(tmp_path)]) == 1  # everything reported first, then the line
    assert "sees no CUDA device" in capsys.readouterr().err


@pytest.mark.cuda
@cuda_only
def test_checks_on_cuda(checks, tmp_path):
    codes = run_checks(checks, tmp_path, "cuda")
    assert codes == dict.fromkeys(codes, 0)
    env = read(tmp_path, "env")
    assert env["devices"] and "bf16" in env["devices"][0]
    fold = read(tmp_path, "fold-batch")
    assert fold["device"].startswith("cuda") and all(e["agree"] for e in fold["equality"])
    for row in read(tmp_path, "hsta-step")["rows"]:
        assert row["status"] == "ok" and row["staging_used"] == row["staging"] and row["peak_mb"] > 0
    assert all(r["status"] == "ok" and r["peak_mb"] > 0 for r in read(tmp_path, "small-steps")["rows"])


# ------------------------------------------------------------------------------------------- gpu_check.sh


def gpu_check(out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env},
    )


def summary_rows(out: Path) -> dict[str, list[str]]:
    """The summary's step table: step -> [status, exit, seconds, note]."""
    text = (out / "summary.md").read_text()
    table = text[text.index("| step |") :].split("\n\n")[0].splitlines()[2:]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)}


def test_script_parses_and_refuses_an_unknown_step(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    bad = gpu_check(tmp_path, GPU_CHECK_STEPS="env,nonsense")
    assert bad.returncode == 2 and "unknown step 'nonsense'" in bad.stderr


def test_script_reports_a_timed_out_step_and_runs_the_next(tmp_path):
    """fold-batch gets 0.2 s (it times out while importing torch); hsta-step then runs and passes."""
    done = gpu_check(tmp_path, GPU_CHECK_STEPS="fold-batch=0.2,hsta-step", GPU_CHECK_DEVICE="cpu", GPU_CHECK_QUICK="1")
    assert done.returncode == 1, done.stdout + done.stderr
    rows = summary_rows(tmp_path)
    assert list(rows) == ["fold-batch", "hsta-step"]
    assert rows["fold-batch"][:2] == ["timed out", "124"] and rows["hsta-step"][:2] == ["ok", "0"]
    log = (tmp_path / "gpu_check.log").read_text()
    assert log.index("-- fold-batch: timed out (exit 124") < log.index("hsta_tiny training step")
    assert sorted(p.name for p in (tmp_path / "steps").glob("*.log")) == ["01-fold-batch.log", "02-hsta-step.log"]
    assert "hsta_tiny training step" in (tmp_path / "summary.md").read_text()  # the check's own table
    assert json.loads((tmp_path / "hsta-step.json").read_text())["ok"]


def test_script_reports_failed_steps_and_writes_the_summary(tmp_path):
    """An interpreter that is not there: every Python step fails (127), each is reported, the rest run."""
    done = gpu_check(tmp_path, PYTHON=str(tmp_path / "no-python"), GPU_CHECK_STEPS="env,fold-batch,leaderboard")
    assert done.returncode == 1
    rows = summary_rows(tmp_path)
    assert rows["env"][:2] == ["failed", "127"] and rows["fold-batch"][:2] == ["failed", "127"]
    assert rows["leaderboard"][0] == "skipped" and "no runs" in rows["leaderboard"][3]
    assert "-- env: failed (exit 127" in done.stdout and "-- fold-batch: failed (exit 127" in done.stdout


@without_cuda
def test_script_without_cuda_says_so_for_each_step(tmp_path):
    done = gpu_check(tmp_path, GPU_CHECK_STEPS="env,fold-batch")
    assert done.returncode == 1
    rows = summary_rows(tmp_path)
    assert rows["env"][:2] == ["failed", "1"] and rows["fold-batch"][:2] == ["failed", "2"]
    assert "sees no CUDA device" in rows["env"][3] and "sees no CUDA device" in rows["fold-batch"][3]
    assert (tmp_path / "env.json").is_file()  # the environment was reported before the step failed
