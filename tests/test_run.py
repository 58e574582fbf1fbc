"""`hsta-bench run` (through a local Ray instance): the results store and its contract (ARCHITECTURE.md),
and user errors."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from helpers import SHARED_FLOW, assert_one_line_error, realdata, run_cli


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    here = tmp_path_factory.mktemp("cwd")  # a relative --output, as `make demo` gives (trials run elsewhere)
    proc = run_cli(
        "run",
        "--dataset",
        "megc2019-flow",
        "--model",
        "ststnet",
        "--model",
        "off_apexnet",
        "--preset",
        "smoke",
        "--output",
        "results",
        "--json",
        timeout=600,
        cwd=here,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    return here / "results" / summary["run_id"], summary


def test_store_has_every_table_with_the_contract_columns(smoke_run):
    path, summary = smoke_run
    assert sorted(p.name for p in path.iterdir()) == [
        "confusion.parquet",
        "fragments",
        "leaderboard.md",
        "logs",
        "metrics.parquet",
        "per_class.parquet",
        "predictions.parquet",
        "run.json",
        "splits.parquet",
        "tune",
    ]
    predictions = pl.read_parquet(path / "predictions.parquet")
    assert predictions.columns == [
        "dataset",
        "protocol",
        "model",
        "fold",
        "subject",
        "sample_id",
        "source",
        "label",
        "pred",
        "synthetic",
        "logits",
    ]
    classes = json.loads((path / "run.json").read_text())["evaluations"][0]["classes"]
    logits = np.array(predictions["logits"].to_list())  # one score per class in the protocol's order, pred their argmax
    assert logits.shape == (predictions.height, len(classes)) and np.isfinite(logits).all()
    assert (np.array(classes)[logits.argmax(1)] == predictions["pred"].to_numpy()).all()
    splits = pl.read_parquet(path / "splits.parquet")
    assert splits.columns == ["dataset", "protocol", "fold", "subject", "sample_id", "role"]
    metrics = pl.read_parquet(path / "metrics.parquet")
    assert metrics.columns[:4] == ["dataset", "protocol", "model", "scope"]
    assert {"uf1", "uar", "acc", "n", "uf1_ci_low", "uf1_ci_high", "synthetic"} <= set(metrics.columns)
    assert not list(path.glob(".*.tmp"))  # nothing half-written left behind


def test_every_sample_is_predicted_once_per_model_by_a_fold_that_did_not_train_on_its_subject(smoke_run):
    path, _ = smoke_run
    predictions = pl.read_parquet(path / "predictions.parquet")
    splits = pl.read_parquet(path / "splits.parquet")
    for _model, group in predictions.group_by("model"):
        assert group["sample_id"].n_unique() == group.height == 48
        assert (group["fold"] == group["subject"]).all()  # LOSO: the fold is named by its test subject
    trained = splits.filter(pl.col("role") != "test").select("fold", "subject").unique()
    leak = predictions.join(trained, on=["fold", "subject"], how="inner")
    assert leak.height == 0
    assert predictions["synthetic"].all()


def test_metrics_are_the_pooled_predictions_scores(smoke_run):
    from hsta_bench.engine import metrics as m

    path, summary = smoke_run
    predictions = pl.read_parquet(path / "predictions.parquet")
    table = pl.read_parquet(path / "metrics.parquet")
    classes = ["negative", "positive", "surprise"]
    for row in summary["metrics"]:
        group = predictions.filter(pl.col("model") == row["model"])
        s = m.scores([classes.index(c) for c in group["label"]], [classes.index(c) for c in group["pred"]], 3)
        assert row["uf1"] == pytest.approx(s["uf1"]) and row["uar"] == pytest.approx(s["uar"]) and row["n"] == 48
        assert row["uf1_ci_low"] <= row["uf1"] <= row["uf1_ci_high"]
        assert row["synthetic"] is True
    scopes = set(table.filter(pl.col("model") == "ststnet")["scope"])
    assert {"all", "source=casme2", "source=samm", "source=smic"} <= scopes
    assert sum(s.startswith("fold=") for s in scopes) == 6


def test_run_json_records_what_reproduces_the_run(smoke_run):
    path, _ = smoke_run
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "finished" and run["preset"] == "smoke"
    assert run["environment"]["torch"] and "git_commit" in run
    first = run["evaluations"][0]
    assert first["model"] == "ststnet" and first["synthetic"] is True and first["folds"] == 6
    assert first["train"]["optimizer"] == "adam" and first["train"]["epochs"] == 2
    assert sorted(first["seeds"].values()) == list(range(6))
    assert run["config"]["evaluation"]["scheme"] == "loso"
    assert run["dispatch"]["executor"] == "ray" and run["dispatch"]["joined"] is False
    trials = run["trials"]
    assert sorted(i for t in trials if t["model"] == "ststnet" for i in t["folds"]) == list(range(6))
    assert {t["model"] for t in trials} == {"ststnet", "off_apexnet"}
    for e in run["evaluations"]:  # where every fold trained, as its trial recorded it (no GPU here: the CPU, fp32)
        (placed,) = e["placement"]
        assert (placed["device"], placed["precision"], placed["folds"]) == ("cpu", "fp32", e["folds"])
        assert placed["fold_batched"] is False and len(placed["nodes"]) == 1


def test_the_run_leaves_its_leaderboard_and_ray_logs(smoke_run):
    path, summary = smoke_run
    board = (path / "leaderboard.md").read_text()
    assert "## megc2019-flow · megc2019-composite · LOSO · synthetic stand-in" in board
    best = max(summary["metrics"], key=lambda r: r["uf1"])
    assert f"| 1 | {best['model']} *(synthetic)* | smoke | {best['uf1']:.3f}" in board  # ranked by pooled UF1
    assert summary["run_id"] in board and "hsta-bench run --dataset megc2019-flow" in board
    assert "Started a local Ray instance" in (path / "logs" / "ray.log").read_text()


def test_the_leaderboard_of_a_run_folder_scores_what_the_run_scored(smoke_run, tmp_path):
    path, summary = smoke_run
    proc = run_cli("leaderboard", str(path), "--store", str(tmp_path / "store"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (table,) = json.loads(proc.stdout)["tables"]
    assert table["synthetic"] is True and table["published"] == []
    metrics = pl.read_parquet(path / "metrics.parquet").filter(pl.col("scope") == "all")
    for row in table["rows"]:  # from per-subject counts alone: the run's own scores and intervals
        own = metrics.filter(pl.col("model") == row["model"]).row(0, named=True)
        for key in ("uf1", "uar", "acc", "uf1_ci_low", "uf1_ci_high", "uar_ci_low", "uar_ci_high"):
            assert row[key] == pytest.approx(own[key]), key
        assert row["n"] == own["n"] == 48 and row["run_id"] == summary["run_id"]
        settings = tmp_path / "store" / "settings" / f"{row['config_key']}.yaml"  # the row's settings, named
        assert settings.is_file()
        assert row["command"] == (
            f"hsta-bench run --dataset megc2019-flow --model {row['model']} --preset smoke --config {settings}"
        )
        assert row["provenance"]["hardware"].endswith("threads (fp32)")  # where the folds trained, not the driver
    counts = (tmp_path / "store" / "counts.csv").read_text()
    assert "sample" not in counts.splitlines()[0] and len(counts.splitlines()) <= 1 + 2 * 6 * 9  # no per-sample rows


def test_the_leaderboard_refuses_a_run_whose_splits_leak(smoke_run, tmp_path):
    import shutil

    path, _ = smoke_run
    copy = tmp_path / path.name
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("fragments", "tune", "logs"))
    splits = pl.read_parquet(copy / "splits.parquet")
    tested = splits.filter(pl.col("role") == "test").row(0, named=True)
    # one more sample of the test subject, on the training side of its own fold
    leak = pl.DataFrame([{**tested, "sample_id": "extra", "role": "train"}], schema=splits.schema)
    pl.concat([splits, leak]).write_parquet(copy / "splits.parquet")
    assert_one_line_error(
        run_cli("leaderboard", str(copy)),
        "splits.parquet",
        f"subject {tested['subject']}",
        f"fold {tested['fold']}",
        "not admitted",
    )


def test_a_folder_of_runs_passes_over_a_run_still_going(smoke_run, tmp_path):
    import shutil

    path, _ = smoke_run
    shutil.copytree(path, tmp_path / "results" / path.name, ignore=shutil.ignore_patterns("fragments", "tune", "logs"))
    (tmp_path / "results" / "going").mkdir()
    shutil.copy(path / "run.json", tmp_path / "results" / "going" / "run.json")  # trials still running: no tables yet
    proc = run_cli("leaderboard", str(tmp_path / "results"), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "going: no evaluation finished yet; left out"
    assert sorted(line.split(",")[3] for line in proc.stdout.splitlines()[1:]) == ["off_apexnet", "ststnet"]
    assert_one_line_error(run_cli("leaderboard", str(tmp_path / "results" / "going")), "no predictions.parquet")


def _drop_a_prediction(folder):
    predictions = pl.read_parquet(folder / "predictions.parquet")
    predictions.slice(1).write_parquet(folder / "predictions.parquet")


@pytest.mark.parametrize(
    "damage,fragments",
    [
        (lambda f: (f / "predictions.parquet").unlink(), ["no predictions.parquet", "hsta-bench run --resume"]),
        (lambda f: (f / "run.json").write_text("{not json"), ["run.json: cannot read it"]),
        (lambda f: (f / "splits.parquet").unlink(), ["no splits.parquet"]),
        (_drop_a_prediction, ["predictions.parquet", "has predictions for 47 of its 48 samples"]),
    ],
)
def test_the_leaderboard_refuses_a_damaged_run_folder_in_one_line(smoke_run, tmp_path, damage, fragments):
    import shutil

    path, _ = smoke_run
    copy = tmp_path / path.name
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("fragments", "tune", "logs"))
    damage(copy)
    assert_one_line_error(run_cli("leaderboard", str(copy)), *fragments)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["run"], ["--dataset NAME", "--all-datasets"]),
        (["run", "--dataset", "casme9"], ["unknown dataset", "casme9"]),
        (["run", "--dataset", "casme2", "--model", "resnet"], ["--model resnet: unknown model"]),
        (["run", "--dataset", "casme2", "--preset", "huge"], ["--preset huge: unknown preset"]),
        (["run", "--dataset", "megc2019-flow", "--model", "c3d"], ["no model can run", "c3d on megc2019-flow"]),
        (
            [
                "run",
                "--dataset",
                "casme2",
                "--set",
                "evaluation.scheme=random",
                "--model",
                "ststnet",
                "--preset",
                "smoke",
            ],
            ["evaluation.scheme", "'random'"],
        ),
    ],
)
def test_user_errors_are_one_line(args, fragments, tmp_path):
    assert_one_line_error(run_cli(*args, "--output", str(tmp_path)), *fragments)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    from hsta_bench.io import atomic_write

    target = tmp_path / "metrics.parquet"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.parquet"]


@realdata
def test_a_run_on_the_real_composite_is_not_marked_synthetic(tmp_path):
    proc = run_cli(
        "run",
        "--dataset",
        "megc2019-flow",
        "--data-root",
        f"megc2019-flow={SHARED_FLOW}",
        "--model",
        "ststnet",
        "--preset",
        "smoke",
        "--set",
        "evaluation.scheme=kfold",
        "--set",
        "evaluation.k=2",
        "--set",
        "evaluation.bootstrap=100",
        "--output",
        str(tmp_path),
        "--json",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / json.loads(proc.stdout)["run_id"]
    predictions = pl.read_parquet(path / "predictions.parquet")
    assert predictions.height == 442 and not predictions["synthetic"].any()
    splits = pl.read_parquet(path / "splits.parquet")
    tested = splits.filter(pl.col("role") == "test")
    assert (
        tested["sample_id"].n_unique() == 442
        and tested.group_by("subject").agg(pl.col("fold").n_unique())["fold"].max() == 1
    )
    metrics = pl.read_parquet(path / "metrics.parquet").filter(pl.col("scope") == "all")
    assert metrics["n"].to_list() == [442] and not metrics["synthetic"].any()
