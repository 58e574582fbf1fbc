"""The results store: one folder per run, parquet tables and a run.json, each file written atomically.

    <output>/<run_id>/run.json             config, versions, git commit, seeds, timings, hardware
    <output>/<run_id>/predictions.parquet  dataset, protocol, model, fold, subject, sample_id, source,
                                           label, pred, synthetic, logits (the model's scores, one per
                                           class in the protocol's order: pred is their argmax)
    <output>/<run_id>/splits.parquet       dataset, protocol, fold, subject, sample_id, role
    <output>/<run_id>/metrics.parquet      dataset, protocol, model, scope, uf1, uar, acc, n, uf1_ci_low,
                                           uf1_ci_high, uar_ci_low, uar_ci_high, synthetic
    <output>/<run_id>/per_class.parquet    dataset, protocol, model, class, f1, recall, support
    <output>/<run_id>/confusion.parquet    dataset, protocol, model, label, pred, count

`scope` is `all` (pooled over every fold: the benchmark's number), `source=<name>` (inside a composite)
or `fold=<name>` (reported for inspection; per-fold averages are not the MEGC metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from hsta_bench.engine import metrics
from hsta_bench.io import new_run_id, write_json, write_parquet

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

METRIC_COLUMNS = (
    "dataset",
    "protocol",
    "model",
    "scope",
    "uf1",
    "uar",
    "acc",
    "n",
    "uf1_ci_low",
    "uf1_ci_high",
    "uar_ci_low",
    "uar_ci_high",
    "synthetic",
)


def score_tables(predictions, classes_of: dict, bootstrap: int = 2000, level: float = 0.95, seed: int = 0):
    """metrics, per_class and confusion tables from a predictions table; `classes_of[protocol]` gives
    the class order."""
    metric_rows, class_rows, confusion_rows = [], [], []
    for (dataset, protocol, model), group in predictions.group_by(
        ["dataset", "protocol", "model"], maintain_order=True
    ):
        classes = list(classes_of[protocol])
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[c] for c in group["label"]], dtype=int)
        pred = np.array([index[c] for c in group["pred"]], dtype=int)
        subjects = group["subject"].to_numpy().astype(str)
        synthetic = bool(group["synthetic"].any())
        scopes = [("all", np.ones(len(y), bool))]
        sources = sorted(set(group["source"].to_list()))
        if len(sources) > 1:
            scopes += [(f"source={s}", group["source"].to_numpy() == s) for s in sources]
        scopes += [(f"fold={f}", group["fold"].to_numpy() == f) for f in dict.fromkeys(group["fold"].to_list())]
        for scope, mask in scopes:
            s = metrics.scores(y[mask], pred[mask], len(classes))
            row = {
                "dataset": dataset,
                "protocol": protocol,
                "model": model,
                "scope": scope,
                "uf1": s["uf1"],
                "uar": s["uar"],
                "acc": s["acc"],
                "n": s["n"],
                "uf1_ci_low": None,
                "uf1_ci_high": None,
                "uar_ci_low": None,
                "uar_ci_high": None,
                "synthetic": synthetic,
            }
            if not scope.startswith("fold=") and len(set(subjects[mask])) > 1 and bootstrap > 0:
                for stat in ("uf1", "uar"):
                    low, high = metrics.bootstrap_ci(
                        y[mask], pred[mask], subjects[mask], len(classes), stat, bootstrap, level, seed
                    )
                    row[f"{stat}_ci_low"], row[f"{stat}_ci_high"] = low, high
            metric_rows.append(row)
        whole = metrics.scores(y, pred, len(classes))
        for i, c in enumerate(classes):
            class_rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocol,
                    "model": model,
                    "class": c,
                    "f1": float(whole["f1"][i]),
                    "recall": float(whole["recall"][i]),
                    "support": int(whole["support"][i]),
                }
            )
        cm = metrics.confusion(y, pred, len(classes))
        for i, a in enumerate(classes):
            for j, b in enumerate(classes):
                confusion_rows.append(
                    {
                        "dataset": dataset,
                        "protocol": protocol,
                        "model": model,
                        "label": a,
                        "pred": b,
                        "count": int(cm[i, j]),
                    }
                )
    metric_schema: dict[str, PolarsDataType] = {k: pl.Utf8 for k in ("dataset", "protocol", "model", "scope")}
    metric_schema.update(
        {k: pl.Float64 for k in METRIC_COLUMNS if k not in metric_schema and k not in ("n", "synthetic")}
    )
    metric_schema.update({"n": pl.Int64, "synthetic": pl.Boolean})
    return (
        pl.DataFrame(metric_rows, schema={k: metric_schema[k] for k in METRIC_COLUMNS}),
        pl.DataFrame(
            class_rows,
            schema={
                "dataset": pl.Utf8,
                "protocol": pl.Utf8,
                "model": pl.Utf8,
                "class": pl.Utf8,
                "f1": pl.Float64,
                "recall": pl.Float64,
                "support": pl.Int64,
            },
        ),
        pl.DataFrame(
            confusion_rows,
            schema={
                "dataset": pl.Utf8,
                "protocol": pl.Utf8,
                "model": pl.Utf8,
                "label": pl.Utf8,
                "pred": pl.Utf8,
                "count": pl.Int64,
            },
        ),
    )


class RunStore:
    """The folder of one run; tables are rewritten whole (atomically) as evaluations finish."""

    def __init__(self, output: Path, run_id: str | None = None):
        self.run_id = run_id or new_run_id()
        self.output = Path(output)
        self.path = self.output / self.run_id  # made by the first write: a run that fails first leaves nothing

    def write(self, run: dict, predictions, splits, classes_of: dict, bootstrap: int, level: float, seed: int):
        self.path.mkdir(parents=True, exist_ok=True)
        metric_table, class_table, confusion_table = score_tables(predictions, classes_of, bootstrap, level, seed)
        write_parquet(predictions, self.path / "predictions.parquet")
        write_parquet(splits, self.path / "splits.parquet")
        write_parquet(metric_table, self.path / "metrics.parquet")
        write_parquet(class_table, self.path / "per_class.parquet")
        write_parquet(confusion_table, self.path / "confusion.parquet")
        write_json(run, self.path / "run.json")
        return metric_table
