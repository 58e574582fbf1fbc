"""`hsta-bench tune` end to end through Ray: no trial of a study ever sees the subjects the study is held out
from, the outer run trains each test fold with its own study's best configuration, the best configuration
runs with `hsta-bench run`, and an interrupted tune resumes to exactly the requested number of trials."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from helpers import assert_one_line_error, run_cli

# ststnet on the CASME II stand-in (5 subjects): two groups of outer folds and the final study
TUNE = [
    "--model",
    "ststnet",
    "--dataset",
    "casme2",
    "--preset",
    "smoke",
    "--set",
    "tune.outer_groups=2",
    "--set",
    "tune.inner_k=2",
    "--set",
    "evaluation.bootstrap=50",
]


def _studies(tune_dir: Path):
    import optuna

    info = json.loads((tune_dir / "tune.json").read_text())
    storage = optuna.storages.RDBStorage(f"sqlite:///{tune_dir / 'study.db'}")
    return info, {
        s["name"]: (s, optuna.load_study(study_name=f"{info['tune_id']}/{s['name']}", storage=storage))
        for s in info["studies"]
    }


def _finished(study) -> list:
    return [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]


@pytest.mark.slow
def test_tune_is_nested_and_its_best_configuration_runs(tmp_path):
    out = tmp_path / "tunes"
    proc = run_cli("tune", *TUNE, "--trials", "3", "--output", str(out), "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    tune_dir = Path(summary["path"])
    info, studies = _studies(tune_dir)
    assert info["status"] == "finished" and [s for s in studies] == ["g0", "g1", "all"]

    # every trial of every study saw only its study's subjects, never the held-out ones
    for _name, (s, study) in studies.items():
        assert len(_finished(study)) == 3
        for t in _finished(study):
            seen = set(t.user_attrs["subjects_seen"])
            assert seen == set(s["subjects"]) and not seen & set(s["held_out"])
    splits = pl.read_parquet(tune_dir / "splits.parquet")
    for name, (s, _) in studies.items():
        used = splits.filter((pl.col("study") == name) & (pl.col("role") != "held_out"))
        assert not set(used["subject"]) & set(s["held_out"])
    assert set(studies["g0"][0]["held_out"]) | set(studies["g1"][0]["held_out"]) == set(studies["all"][0]["subjects"])

    # the outer run: each fold trained with the best configuration of the study that held its subject out
    run_dir = Path(info["outer"]["path"])
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["tune"]["tune_id"] == info["tune_id"]
    folds = run["config"]["tuned"]["ststnet"]["folds"]["casme2"]
    for _name, (s, study) in studies.items():
        best = max((t for t in study.get_trials() if t.state.name == "COMPLETE"), key=lambda t: (t.value, -t.number))
        for fold in s["outer_folds"]:
            assert fold in s["held_out"]  # LOSO: the fold is its test subject
            tuned_on = folds[fold].pop("tuned_on")
            assert folds[fold] == {
                "train": {"lr": best.params["train/lr"]},
                "model": {"dropout": best.params["model/dropout"]},
            }
            assert tuned_on["subjects"] == sorted(f"casme2/{x}" for x in s["subjects"]) and tuned_on["synthetic"]
    assert sorted(folds) == sorted(studies["all"][0]["subjects"])
    recorded = run["evaluations"][0]["fold_recipes"]
    assert {f: r["train"]["lr"] for f, r in recorded.items()} == {f: v["train"]["lr"] for f, v in folds.items()}
    predictions = pl.read_parquet(run_dir / "predictions.parquet")
    assert predictions.height == 38 and predictions["sample_id"].is_unique().all()
    assert (predictions["fold"] == predictions["subject"]).all()
    assert summary["outer_score"]["n"] == 38

    # what it leaves: trial table, report with the history plot, best.yaml that `run` takes
    assert pl.read_parquet(tune_dir / "trials.parquet").height == 9
    assert (tune_dir / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tune_dir / "report.md").read_text()
    assert "## Test score: the outer run" in report and "![history](history.png)" in report
    assert set(summary["importances"]) == {"g0", "g1", "all"}
    best = summary["best"]
    ran = run_cli(
        "run",
        "--config",
        str(tune_dir / "best.yaml"),
        "--model",
        "ststnet",
        "--dataset",
        "samm",
        "--preset",
        "smoke",
        "--in-process",
        "--output",
        str(tmp_path / "runs"),
        "--json",
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    evaluation = json.loads((Path(json.loads(ran.stdout)["path"]) / "run.json").read_text())["evaluations"][0]
    assert evaluation["recipe"].endswith("+ tuned.ststnet")
    assert evaluation["train"]["lr"] == best["params"]["train"]["lr"]
    assert evaluation["overrides"]["dropout"] == best["params"]["model"]["dropout"]
    # on the subjects that chose it, it is refused: that score would not be a test score
    refused = run_cli(
        "run",
        "--config",
        str(tune_dir / "best.yaml"),
        "--model",
        "ststnet",
        "--dataset",
        "casme2",
        "--preset",
        "smoke",
        "--in-process",
        "--output",
        str(tmp_path / "runs"),
    )
    assert_one_line_error(
        refused, "tuned.ststnet was chosen with the labels of subject(s) this run tests", "casme2/sub01"
    )


def _finished_in(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.slow
def test_an_interrupted_tune_resumes_to_the_requested_trials(tmp_path):
    out = tmp_path / "tunes"
    with open(tmp_path / "stderr", "w") as sink:
        driver = subprocess.Popen(
            [sys.executable, "-m", "hsta_bench", "tune", *TUNE, "--trials", "3", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while driver.poll() is None and time.monotonic() < deadline:
            dbs = list(out.glob("*/study.db"))
            if dbs and _finished_in(dbs[0]) >= 2:
                break
            time.sleep(0.2)
        assert driver.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        driver.send_signal(signal.SIGINT)
        driver.wait(60)
    finally:
        try:
            import os

            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stderr = (tmp_path / "stderr").read_text()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert driver.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert len(errors) == 1 and "--resume" in errors[0]
    (tune_dir,) = out.iterdir()
    info, studies = _studies(tune_dir)
    assert info["status"] == "interrupted"
    before = {(name, t.number, t.state.name, t.value) for name, (_, s) in studies.items() for t in _finished(s)}
    assert 2 <= len(before) < 9

    resumed = run_cli("tune", "--resume", tune_dir.name, "--output", str(out), "--json", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info, studies = _studies(tune_dir)
    assert info["status"] == "finished" and len(info["resumed"]) == 1
    after = {(name, t.number, t.state.name, t.value) for name, (_, s) in studies.items() for t in _finished(s)}
    assert before <= after  # what finished before the interruption is kept, not redone
    for name, (_, s) in studies.items():
        assert len(_finished(s)) == 3, name
        assert not [t for t in s.get_trials() if t.state.name == "RUNNING"]
    assert json.loads((Path(info["outer"]["path"]) / "run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--dataset", "casme2"], ["--model"]),
        (["--model", "ststnet"], ["--dataset"]),
        (["--model", "nope", "--dataset", "casme2"], ["--model nope", "unknown model"]),
        (["--model", "ststnet", "--dataset", "casme2", "--space", "train.epochs=int(1,3)"], ["train.epochs", "ASHA"]),
        (["--model", "ststnet", "--dataset", "casme2", "--space", "train.lr=bogus(1)"], ["--space train.lr=bogus(1)"]),
        (["--model", "ststnet", "--dataset", "casme2", "--trials", "0"], ["--trials 0"]),
        (["--model", "ststnet", "--dataset", "casme2", "--set", "tune.outer_groups=1"], ["tune.outer_groups"]),
        (["--resume", "x", "--model", "ststnet"], ["drop --model"]),
    ],
)
def test_tune_mistakes_are_one_line(args, fragments, tmp_path):
    assert_one_line_error(run_cli("tune", *args, "--output", str(tmp_path)), *fragments)


def test_resume_of_a_missing_tune_is_one_line(tmp_path):
    assert_one_line_error(run_cli("tune", "--resume", "tune-none", "--output", str(tmp_path)), "no tune.json at")
