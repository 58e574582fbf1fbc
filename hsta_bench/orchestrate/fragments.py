"""Result fragments: what trials leave behind, one parquet file per (model, dataset, protocol, fold).

    <root>/<model>/<dataset>/<protocol>/fold-<index>.parquet   that fold's predictions (the columns of
                                                                predictions.parquet) + chosen_epoch, seconds,
                                                                and where it trained (PLACEMENT_COLUMNS)

A fold's file is written once its model is trained, to a temporary name and renamed, so a fold is on disk
whole or not at all. That is what makes a run resumable at fold granularity and exactly-once: a trial
trains only folds without a file, and merging reads each fold's file once. Two writers of the same fold
(a trial still running somewhere while its run is resumed) compute the same rows, and the rename keeps one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from hsta_bench.engine.evaluate import PREDICTION_COLUMNS, predictions_frame
from hsta_bench.errors import UserError
from hsta_bench.io import write_parquet

# where and how a fold trained (engine/device.py's Placement, and whether it trained fold-batched)
PLACEMENT_COLUMNS = (
    "device",
    "device_name",
    "precision",
    "node",
    "ray_node",
    "gpu_ids",
    "gpu_share",
    "fold_batched",
    "started_at",
)


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


def write(root: Path, plan, index: int, part) -> Path:
    """Write the predictions of fold `index` (`part`: run_folds' FoldResults for that fold alone)."""
    (epoch,) = part.chosen_epoch.values()
    where = part.placement or {}
    placed = {
        "device": str(where.get("device", "")),
        "device_name": str(where.get("name", "")),
        "precision": str(where.get("precision", "")),
        "node": str(where.get("node", "")),
        "ray_node": str(where.get("ray_node", "")),
        "gpu_ids": str(where.get("gpu_ids", "")),
        "gpu_share": float(where.get("gpu_share", 0.0)),
        "fold_batched": bool(where.get("fold_batched", False)),
        "started_at": float(part.started_at),
    }  # wall clock (time.time) the training began
    frame = predictions_frame(plan, [part]).with_columns(
        pl.lit(epoch, dtype=pl.Int64).alias("chosen_epoch"),
        pl.lit(part.seconds, dtype=pl.Float64).alias("seconds"),
        *(pl.lit(value).alias(name) for name, value in placed.items()),
    )
    path = fragment_path(root, plan.model, plan.dataset, plan.protocol, index)
    write_parquet(frame, path)
    return path


def merge(root: Path, plan):
    """The predictions of every fold of `plan` from its fragments, each sample exactly once, and per fold
    its chosen epoch and training seconds. Raises FragmentError when a fold is missing or a fragment does
    not hold exactly its fold's test samples."""
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
            raise FragmentError(
                f"{path}: does not hold the test samples of fold {fold.name} "
                "(did the data or the evaluation settings change since the run started?)"
            )
        info[fold.name] = {
            "chosen_epoch": frame["chosen_epoch"][0],
            "seconds": round(float(frame["seconds"][0]), 2),
            # fragments of runs from before placement was recorded have none
            "placement": {c: frame[c][0] for c in PLACEMENT_COLUMNS if c in frame.columns},
        }
        if "logits" not in frame.columns:  # a fold trained before predictions kept their logits: none to give
            frame = frame.with_columns(pl.lit(None, dtype=pl.List(pl.Float32)).alias("logits"))
        frames.append(frame.select(PREDICTION_COLUMNS))
    predictions = pl.concat(frames)
    order = {s: i for i, s in enumerate(ids)}  # manifest order, as an in-process evaluation gives
    predictions = predictions.with_columns(pl.col("sample_id").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
    predictions = predictions.sort("_o").drop("_o")
    if predictions["sample_id"].n_unique() != len(ids) or predictions.height != len(ids):
        raise FragmentError(
            f"{folder(root, plan.model, plan.dataset, plan.protocol)}: samples not predicted exactly once"
        )
    return predictions, info


def placements(per_fold: dict) -> list[dict]:
    """Where an evaluation's folds trained (merge's per-fold info), grouped: one entry per device, name,
    precision and fold batching, with its folds and nodes (what run.json and the leaderboard show)."""
    groups: dict[tuple, dict] = {}
    for info in per_fold.values():
        where = info.get("placement") or {}
        if not where:
            continue
        key = (where.get("device"), where.get("device_name"), where.get("precision"), where.get("fold_batched"))
        entry = groups.setdefault(
            key,
            {
                "device": key[0],
                "name": key[1],
                "precision": key[2],
                "fold_batched": bool(key[3]),
                "folds": 0,
                "nodes": [],
            },
        )
        entry["folds"] += 1
        node = where.get("ray_node") or where.get("node")
        if node and node not in entry["nodes"]:
            entry["nodes"].append(node)
    return list(groups.values())
