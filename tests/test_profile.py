"""`hsta-bench profile` end to end: the files it writes (named with the environment), what they hold, the
unsupported cells, the findings' verdicts, and one-line errors for bad options."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import polars as pl
import pytest
import torch

from helpers import assert_one_line_error, run_cli

QUICK = ("--set", "profile.min_seconds=0", "--set", "profile.warmup=1")


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile")
    proc = run_cli(
        "profile",
        "--preset",
        "smoke",
        "--model",
        "hsta_tiny",
        "--model",
        "ststnet",
        "--backend",
        "naive",
        "--backend",
        "sdpa",
        "--backend",
        "sdpa-efficient",
        "--repeats",
        "2",
        *QUICK,
        "--output",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_profile_writes_every_file_named_with_its_environment(profiled):
    from pathlib import Path

    folder = Path(profiled["folder"])
    env = profiled["environment"]
    # the threads of a fresh process (tests that run trials in this one lower its own count)
    threads = int(
        subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    tag = f"pt{torch.__version__.split('+')[0]}-cpu-{threads}threads-fp32"
    assert env["torch"] == torch.__version__ and env["threads"] == threads
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{k}-{tag}.{e}"
        for k, e in (("report", "md"), ("profile", "json"), ("attention", "csv"), ("models", "csv"), ("plot", "png"))
    )
    assert (folder / f"plot-{tag}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (folder / f"report-{tag}.md").read_text()
    assert f"torch {torch.__version__}" in report and f"{threads} threads" in report
    assert f"plot-{tag}.png" in report and "## Findings" in report
    assert json.loads((folder / f"profile-{tag}.json").read_text())["attention"] == profiled["attention"]
    csv = pl.read_csv(folder / f"attention-{tag}.csv")
    assert csv.height == len(profiled["attention"])


def test_every_case_kernel_and_pass_is_measured_or_said_unsupported(profiled):
    cases = profiled["cases"]
    assert {c["model"] for c in cases} == {"hsta_tiny"}  # ststnet has no attention
    rows = {(t["case"], t["backend"], t["passes"]): t for t in profiled["attention"]}
    assert len(rows) == len(profiled["attention"]) == len(cases) * 3 * 2
    samples = profiled["ceiling_samples_gflops"]["fp32"]
    assert profiled["ceilings_gflops"]["fp32"] == pytest.approx(statistics.median(samples))
    for case in cases:
        for passes in ("forward", "forward+backward"):
            efficient = rows[(case["name"], "sdpa-efficient", passes)]
            # the memory-efficient kernel exists on CUDA only: reported, not timed, not an error
            assert efficient["status"].startswith("unsupported: RuntimeError") and efficient["seconds"] is None
            for kernel in ("naive", "sdpa"):
                t = rows[(case["name"], kernel, passes)]
                assert t["status"] == "ok" and t["max_error"] < 1e-4 and t["seconds"] > 0
                assert t["gflops_per_s"] == pytest.approx(t["flops"] / t["seconds"] / 1e9)
                # compared with the ceiling measured nearest in time (one of the run's samples)
                assert t["ceiling_gflops"] in samples
                assert t["ceiling_fraction"] == pytest.approx(t["gflops_per_s"] / t["ceiling_gflops"])
                assert t["peak_bytes"] > 0
            # the FLOP counter sees the written-out attention; it agrees with the analytic count
            naive = rows[(case["name"], "naive", passes)]
            assert naive["flops_source"] == "torch FLOP counter"
            assert naive["flops"] == rows[(case["name"], "sdpa", passes)]["flops"]


def test_models_are_timed_in_both_modes_with_attentions_share(profiled):
    rows = {(t["model"], t["mode"], t["backend"]): t for t in profiled["models"]}
    for mode in ("inference", "train step"):
        assert rows[("ststnet", mode, "-")]["status"] == "ok"  # no attention: timed once
        assert not [k for k in rows if k[0] == "ststnet" and k[2] != "-"]
        for kernel in ("naive", "sdpa"):
            t = rows[("hsta_tiny", mode, kernel)]
            assert t["status"] == "ok" and t["samples_per_s"] == pytest.approx(2 / t["seconds"])
            assert t["flops"] > 0 and t["peak_bytes"] > 0
        assert rows[("hsta_tiny", mode, "sdpa-efficient")]["status"].startswith("unsupported")
    assert rows[("hsta_tiny", "train step", "sdpa")]["flops"] > 2 * rows[("hsta_tiny", "inference", "sdpa")]["flops"]


def test_the_terminal_shows_tables_findings_and_the_report(tmp_path):
    proc = run_cli(
        "profile",
        "--preset",
        "smoke",
        "--model",
        "ststnet",
        "--backend",
        "sdpa",
        "--repeats",
        "1",
        *QUICK,
        "--output",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Models" in proc.stdout and "Findings" in proc.stdout and "report-pt" in proc.stdout
    assert "ststnet" in proc.stdout


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--backend", "fast"], ["--backend fast", "naive"]),
        (["--dtype", "fp64"], ["--dtype fp64", "fp32"]),
        (["--model", "resnet"], ["--model resnet", "unknown model"]),
        (["--batch", "0"], ["--batch 0"]),
        (["--preset", "tiny"], ["--preset tiny"]),
        (["--set", "profile.repeat=3"], ["profile.repeat"]),
    ],
)
def test_bad_options_are_one_line(args, fragments, tmp_path):
    assert_one_line_error(run_cli("profile", *args, "--output", str(tmp_path)), *fragments)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    assert_one_line_error(run_cli("profile", "--device", "cuda", "--output", str(tmp_path)), "--device cuda", "no CUDA")
