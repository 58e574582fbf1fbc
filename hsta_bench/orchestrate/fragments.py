"""Result fragments: what trials leave behind, one parquet file per (model, dataset, protocol, fold).

    <root>/<model>/<dataset>/<protocol>/fold-<index>.parquet   that fold's predictions (the columns of
                                                                predictions.parquet) + chosen_epoch, seconds

A fold's file is written once its model is trained, to a temporary name and renamed, so a fold is on disk
whole or not at all. That is what makes a run resumable at fold granularity and exactly-once: a trial
trains only folds without a file, and merging reads each fold's file once. Two writers of the same fold
(a trial still running somewhere while its run is resumed) compute the same rows, and the rename keeps one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsta_bench.errors import UserError


class FragmentError(UserError):
    """A fragment that does not belong to the run's folds (data or config changed under a resumed run)."""


def folder(root: Path, model: str, dataset: str, protocol: str) -> Path:
    return Path(root) / model / dataset / protocol


def fragment_path(root: Path, model: str, dataset: str, protocol: str, index: int) -> Path:
    return folder(root, model, dataset, protocol) / f"fold-{index:04d}.parquet"


def finished(root: Path, model: str, dataset: str, protocol: str) -> set[int]:
    """Indices of the folds whose fragment is on disk (temporary files of an interrupted write excluded)."""
    found = set()
    for path in folder(root, model, dataset, protocol).glob("fold-*.parquet"):
        try:
            found.add(int(path.stem.removeprefix("fold-")))
        except ValueError:
            continue
    return found


def write(root: Path, plan, index: int, part: dict) -> Path:
    """Write the predictions of fold `index` (`part`: run_folds' output for that fold alone)."""
    import polars as pl

    from hsta_bench.engine.evaluate import predictions_frame
    from hsta_bench.engine.results import write_parquet

    (epoch,) = part["chosen_epoch"].values()
    frame = predictions_frame(plan, [part]).with_columns(
        pl.lit(epoch, dtype=pl.Int64).alias("chosen_epoch"), pl.lit(part["seconds"], dtype=pl.Float64).alias("seconds"))
    path = fragment_path(root, plan.model, plan.dataset, plan.protocol, index)
    write_parquet(frame, path)
    return path


def merge(root: Path, plan):
    """The predictions of every fold of `plan` from its fragments, each sample exactly once, and per fold
    its chosen epoch and training seconds. Raises FragmentError when a fold is missing or a fragment does
    not hold exactly its fold's test samples."""
    import polars as pl

    from hsta_bench.engine.evaluate import PREDICTION_COLUMNS

    ids = plan.manifest["sample_id"].cast(pl.Utf8).to_numpy().astype(str)
    frames, info = [], {}
    for fold in plan.folds:
        path = fragment_path(root, plan.model, plan.dataset, plan.protocol, fold.index)
        if not path.is_file():
            raise FragmentError(f"{path}: missing ({plan.model} on {plan.dataset}, fold {fold.name} not finished)")
        frame = pl.read_parquet(path)
        expected = np.sort(ids[fold.test])
        got = np.sort(frame["sample_id"].to_numpy().astype(str))
        if frame.height != len(fold.test) or not np.array_equal(got, expected) or set(frame["fold"]) != {fold.name}:
            raise FragmentError(f"{path}: does not hold the test samples of fold {fold.name} "
                                "(did the data or the evaluation settings change since the run started?)")
        info[fold.name] = {"chosen_epoch": frame["chosen_epoch"][0], "seconds": round(float(frame["seconds"][0]), 2)}
        frames.append(frame.select(PREDICTION_COLUMNS))
    predictions = pl.concat(frames)
    order = {s: i for i, s in enumerate(ids)}  # manifest order, as an in-process evaluation gives
    predictions = predictions.with_columns(pl.col("sample_id").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
    predictions = predictions.sort("_o").drop("_o")
    if predictions["sample_id"].n_unique() != len(ids) or predictions.height != len(ids):
        raise FragmentError(f"{folder(root, plan.model, plan.dataset, plan.protocol)}: samples not predicted exactly once")
    return predictions, info
