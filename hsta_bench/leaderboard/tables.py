"""The leaderboard's numbers, from a store: one table per benchmark, rows ranked, compared with the best.

A table is one (dataset, protocol, scheme) and either real data or synthetic stand-ins, never both: rows
from stand-ins check that the pipeline runs and are not results. In a table, rows are ranked by pooled UF1
(then UAR); each row's difference to the first is tested with the paired permutation test of
engine/metrics.py on the two rows' per-subject confusion counts, which pairs them only when they scored the
same subjects with the same true classes. Published rows (published.py) are matched to a table by
(dataset, protocol, scheme) and kept apart from the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hsta_bench.engine import metrics


@dataclass
class Row:
    entry: dict
    classes: list[str]
    subjects: list[str]
    sources: dict[str, str]  # subject -> source
    per_subject: np.ndarray  # (subjects, C, C)
    scores: dict
    ci: dict  # "uf1" / "uar" -> (low, high) or None
    rank: int = 0
    versus: dict | None = None  # against the table's first row: difference, p_value, significant; or why not

    @property
    def cm(self) -> np.ndarray:
        return self.per_subject.sum(0)


@dataclass
class Table:
    dataset: str
    protocol: str
    scheme: str
    synthetic: bool
    rows: list[Row]
    published: list[dict] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.protocol}/{self.scheme}" + ("/synthetic" if self.synthetic else "")

    @property
    def sources(self) -> list[str]:
        return sorted({s for r in self.rows for s in r.sources.values()})


def _ci(per_subject, stat, entry):
    if len(per_subject) < 2 or entry["bootstrap"] <= 0:
        return None
    return metrics.bootstrap_ci_counts(per_subject, stat, entry["bootstrap"], entry["level"], entry["bootstrap_seed"])


def make_row(entry: dict, counts: list[dict]) -> Row:
    """A row from an entry's counts."""
    classes = entry["classes"].split("|")
    index = {c: i for i, c in enumerate(classes)}
    # sorted as strings, like metrics.subject_confusions, so the intervals equal the run's own
    subjects = sorted({c["subject"] for c in counts})
    at = {s: i for i, s in enumerate(subjects)}
    per_subject = np.zeros((len(subjects), len(classes), len(classes)), dtype=np.int64)
    for c in counts:
        per_subject[at[c["subject"]], index[c["label"]], index[c["pred"]]] += c["count"]
    return _scored(entry, classes, subjects, {c["subject"]: c["source"] for c in counts}, per_subject)


def _scored(entry, classes, subjects, sources, per_subject) -> Row:
    ci = {stat: _ci(per_subject, stat, entry) for stat in ("uf1", "uar")}
    return Row(entry, classes, subjects, sources, per_subject, metrics.from_confusion(per_subject.sum(0)), ci)


def compare(best: Row, row: Row, settings) -> dict:
    """The paired test of `row` against `best`, or why there is none."""
    if (
        row.classes != best.classes
        or row.subjects != best.subjects
        or not np.array_equal(row.per_subject.sum(2), best.per_subject.sum(2))
    ):
        return {
            "difference": row.scores["uf1"] - best.scores["uf1"],
            "p_value": None,
            "significant": None,
            "why": "not paired: different samples",
        }
    test = metrics.paired_test_counts(row.per_subject, best.per_subject, "uf1", settings.permutations, settings.seed)
    return {**test, "significant": test["p_value"] < settings.alpha, "why": None}


def _rank(rows: list[Row], settings) -> list[Row]:
    rows = sorted(rows, key=lambda r: (-r.scores["uf1"], -r.scores["uar"], r.entry["model"], r.entry["entry"]))
    for i, row in enumerate(rows):
        row.rank = i + 1
        row.versus = compare(rows[0], row, settings) if i else None
    return rows


def build(store, published: list[dict], settings) -> list[Table]:
    """Every table of the store: real data first, then stand-ins; by dataset, protocol and scheme."""
    by_entry: dict[str, list[dict]] = {}
    for c in store.counts:
        by_entry.setdefault(c["entry"], []).append(c)
    groups: dict[tuple, list[Row]] = {}
    for e in store.entries:
        key = (e["synthetic"], e["dataset"], e["protocol"], e["scheme"])
        groups.setdefault(key, []).append(make_row(e, by_entry.get(e["entry"], [])))
    tables = []
    for (synthetic, dataset, protocol, scheme), rows in sorted(groups.items()):
        refs = (
            []
            if synthetic
            else [p for p in published if (p["dataset"], p["protocol"], p["scheme"]) == (dataset, protocol, scheme)]
        )
        tables.append(Table(dataset, protocol, scheme, synthetic, _rank(rows, settings), refs))
    return tables


def by_source(row: Row) -> dict[str, Row]:
    """The row scored on each source of a composite alone (pooled over that source's subjects, own intervals)."""
    parts = {}
    for source in sorted(set(row.sources.values())):
        keep = [k for k, s in enumerate(row.subjects) if row.sources[s] == source]
        parts[source] = _scored(
            row.entry,
            row.classes,
            [row.subjects[k] for k in keep],
            {row.subjects[k]: source for k in keep},
            row.per_subject[keep],
        )
    return parts
