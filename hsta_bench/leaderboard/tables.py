"""The leaderboard's numbers, from a store: one table per benchmark, rows ranked, compared with the best.

A table is one (dataset, protocol, scheme) and either real data or synthetic stand-ins, never both: rows
from stand-ins check that the pipeline runs and are not results. In a table, rows are ranked by pooled UF1
(then UAR); each row's difference to the first is tested with the paired permutation test of
engine/metrics.py on the two rows' per-subject confusion counts, which pairs them only when they scored the
same subjects with the same true classes. Published rows (published.py) are matched to a table by
(dataset, protocol, scheme) and kept apart from the ranking.

Real data is told apart by what a row ran (recipe_diff.py): the ranked table holds the rows trained here at
their model's recipe as it stands; rows that ran other settings (a budget, an ablation, an earlier recipe) and
rows of released weights (scored, not trained here) get tables of their own beside it, each row compared with
the ranked table's first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hsta_bench.engine import metrics

COLLAPSED = 0.9  # a row predicting one class for this share of its samples or more is marked collapsed


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
    # a row of several training seeds (_by_seed): each seed's (seed, entry, scores); empty for a row of one run
    seeds: list = field(default_factory=list)

    @property
    def members(self) -> list[dict]:
        """The store entries the row is made of: one per training seed."""
        return [entry for _, entry, _ in self.seeds] or [self.entry]

    @property
    def cm(self) -> np.ndarray:
        return self.per_subject.sum(0)

    @property
    def collapsed(self) -> tuple[str, float] | None:
        """(class, share) where the row predicts one class for at least COLLAPSED of its samples: a model that
        learnt (nearly) nothing but the majority, whatever its UF1 says."""
        predicted = self.cm.sum(0)
        top = int(predicted.argmax())
        share = float(predicted[top] / max(predicted.sum(), 1))
        return (self.classes[top], share) if share >= COLLAPSED else None


# the kinds of a real benchmark's tables, in the order shown
KINDS = {
    "recipe": "trained here at their recipe",
    "other": "trained here with other settings (budgets, ablations, earlier recipes), not ranked with the recipes",
    "weights": "released weights, scored here, not trained here",
}


@dataclass
class Table:
    dataset: str
    protocol: str
    scheme: str
    synthetic: bool
    rows: list[Row]
    published: list[dict] = field(default_factory=list)
    kind: str = "recipe"  # KINDS
    against: str = ""  # where the row the others are compared with is: "" (this table's first) or its table's title

    @property
    def key(self) -> str:
        return (
            f"{self.dataset}/{self.protocol}/{self.scheme}"
            + ("/synthetic" if self.synthetic else "")
            + ("" if self.kind == "recipe" else f"/{self.kind}")
        )

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
        # allclose: a row of several seeds holds averaged counts (thirds: 1/3 + 2/3 may round below 1)
        or not np.allclose(row.per_subject.sum(2), best.per_subject.sum(2))
    ):
        return {
            "difference": row.scores["uf1"] - best.scores["uf1"],
            "p_value": None,
            "significant": None,
            "why": "not paired: different samples",
        }
    test = metrics.paired_test_counts(row.per_subject, best.per_subject, "uf1", settings.permutations, settings.seed)
    return {**test, "significant": test["p_value"] < settings.alpha, "why": None}


def _by_seed(rows: list[Row]) -> list[Row]:
    """Rows whose settings differ in the training seed only (recipe_diff.Described.group) and that scored the
    same samples, as one row: each subject's confusion counts averaged over the seeds. So the pooled scores are
    those of every seed's predictions together, and the subject-bootstrap interval and the paired test treat
    a subject as one unit carrying every seed's predictions, weighed as one seed's samples (a row of three
    seeds pairs with a row of one). `seeds` keeps each seed's own scores, whose spread the page shows."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        d = row.entry.get("described")
        groups.setdefault(d.group if d is not None and d.group else row.entry["entry"], []).append(row)
    out = []
    for members in groups.values():
        latest: dict = {}  # a seed run twice (the same settings again): its latest run is pooled, the other shown
        for m in sorted(members, key=lambda m: (m.entry["finished"], m.entry["entry"])):
            seed = m.entry["described"].seed if m.entry.get("described") is not None else None
            if seed in latest:
                out.append(latest[seed])
            latest[seed] = m
        members = list(latest.values())
        first = members[0]
        same = all(
            m.classes == first.classes
            and m.subjects == first.subjects
            and np.array_equal(m.per_subject.sum(2), first.per_subject.sum(2))
            for m in members
        )
        if len(members) == 1 or not same:
            out.extend(members)
            continue
        members = sorted(members, key=lambda m: (m.entry["described"].seed, m.entry["entry"]))
        mean = np.mean([m.per_subject for m in members], axis=0)
        row = _scored(members[0].entry, first.classes, first.subjects, first.sources, mean)
        row.seeds = [(m.entry["described"].seed, m.entry, m.scores) for m in members]
        out.append(row)
    return out


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (-r.scores["uf1"], -r.scores["uar"], r.entry["model"], r.entry["entry"]))


def _rank(rows: list[Row], settings, best: Row | None = None) -> list[Row]:
    """Rows numbered by pooled UF1, each compared with `best` (default: the first of them)."""
    rows = _sorted(rows)
    for i, row in enumerate(rows):
        row.rank = i + 1
        reference = best or rows[0]
        row.versus = compare(reference, row, settings) if row is not reference else None
    return rows


def build(store, published: list[dict], settings, describe=None) -> list[Table]:
    """Every table of the store: real data first, then stand-ins; by dataset, protocol and scheme. With
    `describe` (entry -> recipe_diff.Described), real data's rows go to the tables of their kind (KINDS) and each
    row carries its description (`row.entry["described"]`)."""
    by_entry: dict[str, list[dict]] = {}
    for c in store.counts:
        by_entry.setdefault(c["entry"], []).append(c)
    groups: dict[tuple, list[Row]] = {}
    for e in store.entries:
        key = (e["synthetic"], e["dataset"], e["protocol"], e["scheme"])
        if describe is not None:
            e = {**e, "described": describe(e)}
        groups.setdefault(key, []).append(make_row(e, by_entry.get(e["entry"], [])))
    tables = []
    for (synthetic, dataset, protocol, scheme), rows in sorted(groups.items()):
        rows = _by_seed(rows)
        refs = (
            []
            if synthetic
            else [p for p in published if (p["dataset"], p["protocol"], p["scheme"]) == (dataset, protocol, scheme)]
        )
        if synthetic or describe is None:
            tables.append(Table(dataset, protocol, scheme, synthetic, _rank(rows, settings), refs))
            continue
        kinds: dict[str, list[Row]] = {k: [] for k in KINDS}
        for row in rows:
            d = row.entry["described"]
            kinds["weights" if row.entry["selection"] == "given" else "recipe" if d.at_recipe else "other"].append(row)
        ranked = _rank(kinds["recipe"], settings)
        best = ranked[0] if ranked else None
        start = len(tables)
        if ranked:
            tables.append(Table(dataset, protocol, scheme, False, ranked, refs))
        for kind in ("other", "weights"):
            if kinds[kind]:
                against = "" if best is None else "the first row of the ranked table"
                tables.append(
                    Table(
                        dataset, protocol, scheme, False, _rank(kinds[kind], settings, best), kind=kind, against=against
                    )
                )
        if not ranked:  # the published rows go with the first table shown
            tables[start].published = refs
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
