"""`datasets export megc2019-composite` on the nine real clips (tests/realclips.py lays them out as distributed):
the released layout, names and encoding, read back by `megc2019-flow` and run; its flow images against the
released ones (the floor reached, issue 27); STSTNet's published weights on both. Bad input is one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest

from helpers import SHARED_FLOW, assert_one_line_error, realdata, run_cli
from realclips import data_roots, lay_out, needs_real_clips, smic_sets

pytestmark = [needs_real_clips, realdata]

RELEASED_CSV = SHARED_FLOW / "combined_3_class2_for_optical_flow.csv"
FLOW_DIR, CROP_DIR = Path("datasets/STSNet_whole_norm_u_v_os"), Path("datasets/combined_datasets_whole")
# STSTNet's fold weights (christy1206/STSTNet, checked out beside this repository as leaderboard/README.md
# says); the authors' files, never committed here
STSTNET_WEIGHTS = (Path(__file__).resolve().parents[1] / ".." / "STSTNet" / "STSTNet_Weights").resolve()
# The medians reached over the 9 clips (measured: u 0.81, v 0.85, strain 0.49; what limits them: the notes in
# hsta_bench/preprocess/export.py), less a margin for other OpenCV builds
FLOOR = {"u": 0.78, "v": 0.80, "strain": 0.42}


def _roots(tmp: Path) -> list[str]:
    """The clips as distributed, SMIC with its apex table (the release used a table's apex, not the middle)."""
    roots = lay_out(tmp / "as-distributed")
    sets = [item for s in smic_sets(roots) for item in ("--set", s)]
    return [item for root in data_roots(roots) for item in ("--data-root", root)] + sets


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    out = tmp / "composite"
    proc = run_cli("datasets", "export", "megc2019-composite", *_roots(tmp), "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_every_clip_is_written_as_released(exported):
    out, report = exported
    assert report["samples"] == 9 and report["missing"] == [] and report["not_given"] == []
    assert "6 of 9" in report["face_crop"]  # SMIC's reg_images are distributed crops, used whole
    released = {(r["dataset"], r["sub"], r["filename_o"]): r for r in csv.DictReader(RELEASED_CSV.open())}
    header = RELEASED_CSV.read_text().splitlines()[0]
    assert (out / RELEASED_CSV.name).read_text().splitlines()[0] == header
    rows = list(csv.DictReader((out / RELEASED_CSV.name).open()))
    assert len(rows) == 9
    for row in rows:  # every column as the release has it for the same sample, the label included
        assert row == released[(row["dataset"], row["sub"], row["filename_o"])]
        name = f"{row['sub']}_{row['filename_o']} .png"
        assert (SHARED_FLOW / FLOW_DIR / name).is_file()  # the release's own file name
        flow = cv2.imread(str(out / FLOW_DIR / name))
        assert flow.shape == (28, 28, 3) and flow.dtype == np.uint8
        assert (flow.reshape(-1, 3).min(0) == 0).all() and (flow.reshape(-1, 3).max(0) == 255).all()
        crop = cv2.imread(str(out / CROP_DIR / row["imagename"]))
        assert crop.shape == (224, 224, 3) and (SHARED_FLOW / CROP_DIR / row["imagename"]).is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_flow_images_correlate_with_the_released_ones_above_the_floor(exported):
    from hsta_bench import config
    from hsta_bench.preprocess.export import compare

    rows = compare(exported[0], SHARED_FLOW, config.load())
    assert len(rows) == 9
    medians = {k: float(np.median([r[k] for r in rows])) for k in FLOOR}
    assert all(medians[k] >= FLOOR[k] for k in FLOOR), medians
    # channel order: u against the released v (or the other way) is far below u against u
    assert medians["u"] > 0.3 + float(np.median([_swapped(exported[0], r["name"]) for r in rows]))


def _swapped(out: Path, name: str) -> float:
    ours, theirs = (cv2.imread(str(root / FLOW_DIR / name))[..., ::-1].astype(float) for root in (out, SHARED_FLOW))
    return float(np.corrcoef(ours[..., 0].ravel(), theirs[..., 1].ravel())[0, 1])


def _run(folder: Path, output: Path, *extra: str) -> pl.DataFrame:
    proc = run_cli(
        "run", "--dataset", "megc2019-flow", "--model", "ststnet", "--preset", "paper",
        "--data-root", f"megc2019-flow={folder}", "--in-process", "--output", str(output), "--json", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = output / json.loads(proc.stdout)["run_id"]
    return pl.read_parquet(run / "predictions.parquet").sort("sample_id")


def test_the_export_is_read_by_megc2019_flow_and_runs(exported, tmp_path):
    proc = run_cli("datasets", "check", "megc2019-flow", "--data-root", f"megc2019-flow={exported[0]}", "--json")
    assert proc.returncode == 0, proc.stderr
    predictions = _run(exported[0], tmp_path, "--preset", "smoke")
    assert predictions.height == 9 and predictions["subject"].n_unique() == 9


@pytest.mark.skipif(not STSTNET_WEIGHTS.is_dir(), reason=f"STSTNet's published weights not at {STSTNET_WEIGHTS}")
def test_ststnets_published_weights_give_the_same_class_on_exported_and_released_images(exported, tmp_path):
    released = tmp_path / "released"  # the release's own files of the nine samples, linked, in its layout
    for sub in (FLOW_DIR, CROP_DIR):
        (released / sub).mkdir(parents=True)
    (released / RELEASED_CSV.name).write_text((exported[0] / RELEASED_CSV.name).read_text())
    for row in csv.DictReader((exported[0] / RELEASED_CSV.name).open()):
        for sub, name in ((FLOW_DIR, f"{row['sub']}_{row['filename_o']} .png"), (CROP_DIR, row["imagename"])):
            (released / sub / name).symlink_to(SHARED_FLOW / sub / name)
    weights = ("--weights", str(STSTNET_WEIGHTS))
    ours, theirs = _run(exported[0], tmp_path / "ours", *weights), _run(released, tmp_path / "theirs", *weights)
    same = (ours["pred"] == theirs["pred"]).sum()
    assert same >= 7, list(zip(ours["sample_id"], ours["pred"], theirs["pred"]))


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("mine")
    cases = [
        (["datasets", "export", "casme2", "--output", str(tmp_path / "x")], "cannot be exported"),
        (["datasets", "export", "megc2019-composite", "--output", str(tmp_path / "x")], "give the copies"),
        (["datasets", "export", "megc2019-composite", *_roots(tmp_path), "--output", str(tmp_path / "full")],
         "--output"),
    ]  # fmt: skip
    for args, words in cases:
        assert_one_line_error(run_cli(*args), words)
    assert (tmp_path / "full" / "something").read_text() == "mine" and not (tmp_path / "x").exists()
