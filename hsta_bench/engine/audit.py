"""The selection audit: what choosing each test subject's best epoch would have reported, measured, not a result.

HTNet's release (main_HTNet.py) and CausalNet's keep, for each test subject, the epoch whose predictions
scored best on that subject, and report the pooled scores of those predictions: the test labels choose the
model. With `evaluation.audit: true` a run records the test predictions of every fold every
`evaluation.audit_every` epochs (the training itself is unchanged: predicting in eval mode draws no random
numbers and moves no batch-norm statistics), in files of their own:

    <run>/audit/<model>/<dataset>/<protocol>/fold-<index>.parquet   while the run goes (beside the fragments)
    <run>/audit.parquet                                              merged with the labels, when it ends

They are written after the fold's model is chosen and read by nothing that trains, selects or tunes (the
modules that do import nothing from here: tests/test_audit.py checks it); only the leaderboard reads them,
to show beside each honest row the UF1/UAR that per-subject best-epoch selection would have reported from
the same run, marked as not a result, and the inflation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from hsta_bench.engine.metrics import scores
from hsta_bench.io import write_parquet

AUDIT_COLUMNS = ("model", "dataset", "protocol", "fold", "subject", "sample_id", "epoch", "pred")


def folder(root: Path, model: str, dataset: str, protocol: str) -> Path:
    """Where a run's audit files go while it runs: beside its fragments folder (`root`), never inside it."""
    return Path(root).parent / "audit" / model / dataset / protocol


def write(root: Path, plan, index: int, per_epoch: dict[int, np.ndarray]) -> Path | None:
    """Fold `index`'s test predictions (class indices over its test rows) at each audited epoch."""
    if not per_epoch:
        return None
    fold = plan.folds[index]
    m = plan.manifest
    subjects = m["subject"].cast(pl.Utf8).to_numpy().astype(str)[fold.test]
    ids = m["sample_id"].cast(pl.Utf8).to_numpy().astype(str)[fold.test]
    classes = np.array(plan.classes)
    frames = [
        pl.DataFrame(
            {
                "model": plan.model,
                "dataset": plan.dataset,
                "protocol": plan.protocol,
                "fold": fold.name,
                "subject": subjects,
                "sample_id": ids,
                "epoch": np.full(len(ids), epoch, np.int64),
                "pred": classes[np.asarray(pred)],
            }
        )
        for epoch, pred in sorted(per_epoch.items())
    ]
    path = folder(root, plan.model, plan.dataset, plan.protocol) / f"fold-{index:04d}.parquet"
    write_parquet(pl.concat(frames).select(AUDIT_COLUMNS), path)
    return path


def merge(root: Path, plan, labels):
    """Every audited fold of `plan`, with each sample's true label (`labels`: sample_id -> label), or None
    when the run kept no audit for it."""
    base = folder(root, plan.model, plan.dataset, plan.protocol)
    paths = sorted(base.glob("fold-*.parquet")) if base.is_dir() else []
    if not paths:
        return None
    frame = pl.concat([pl.read_parquet(p) for p in paths])
    return frame.with_columns(pl.col("sample_id").replace_strict(labels, return_dtype=pl.Utf8).alias("label"))


def best_epoch_on_test(frame: pl.DataFrame) -> pl.DataFrame:
    """Per fold, the predictions of the epoch with the best accuracy on that fold's own test samples (ties go
    to the later epoch, as HTNet's `<=` does): what the releases that select on the test subject report."""
    acc = (
        frame.group_by("fold", "epoch")
        .agg((pl.col("pred") == pl.col("label")).mean().alias("acc"))
        .sort(["fold", "acc", "epoch"], descending=[False, True, True])
    )
    chosen = acc.group_by("fold", maintain_order=True).first().select("fold", "epoch")
    return frame.join(chosen, on=["fold", "epoch"], how="inner")


def selected_scores(frame, classes: list[str]) -> dict:
    """UF1/UAR of best-epoch-on-test predictions (engine/metrics.py), with the epochs audited."""
    picked = best_epoch_on_test(frame)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in picked["label"].to_list()])
    pred = np.array([index[c] for c in picked["pred"].to_list()])
    out = scores(y, pred, len(classes))
    return {"uf1": float(out["uf1"]), "uar": float(out["uar"]), "epochs": int(frame["epoch"].n_unique())}
