"""Subject-independent splits: leave-one-subject-out and subject k-fold, checked before any training.

A fold holds row indices into the manifest for three roles: `train`, `val` (subjects taken from the
training side for model selection; empty with a fixed epoch budget) and `test`. Which subjects validate is
the val rule: `draw` takes `val_subjects` of them at random; `own-database` takes every other subject of the
test subject's own database (each sample's source dataset in a composite), so that training sees only the
other databases, as Dual-Inception's release does (baselines/dual_inception.py). `check` refuses any
fold where a subject is on two sides, and any set of folds that does not test every sample exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hsta_bench.errors import UserError


class LeakageError(UserError):
    """A subject on two sides of a fold: the run must not go on."""


@dataclass(frozen=True)
class Fold:
    index: int
    name: str  # the test subject (LOSO) or k<i> (k-fold)
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def roles(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _order(subjects: np.ndarray) -> list[str]:
    return sorted({str(s) for s in subjects})


def _draw_val(train_subjects: list[str], count: int, rng: np.random.Generator) -> set[str]:
    if count <= 0:
        return set()
    if count >= len(train_subjects):
        raise UserError(f"evaluation.val_subjects={count}: a fold has only {len(train_subjects)} training subjects")
    return set(rng.choice(train_subjects, size=count, replace=False).tolist())


VAL_RULES = ("draw", "own-database")


def _own_database(test_set: set[str], ids: list[str], database: dict[str, str], name: str) -> set[str]:
    """Every subject of the test subjects' databases but themselves; refused where none would be left to train."""
    own = {database[s] for s in test_set}
    val_set = {s for s in ids if s not in test_set and database[s] in own}
    if all(database[s] in own for s in ids):
        raise UserError(
            f"evaluation.val_rule=own-database: fold {name} would train on no subject (every other subject is of "
            f"its database, {', '.join(sorted(own))}); the rule needs a composite of several databases"
        )
    return val_set


def make_folds(
    subjects,
    scheme: str = "loso",
    k: int = 5,
    val_subjects: int = 0,
    seed: int = 0,
    val_rule: str = "draw",
    databases=None,
) -> list[Fold]:
    """Folds over the samples whose subjects are `subjects` (one entry per manifest row).

    loso: one fold per subject, in sorted order. kfold: subjects shuffled with `seed` and dealt into `k`
    groups. The validation side: `val_rule` draw, `val_subjects` subjects of each fold's training side at
    random; own-database, the other subjects of the test subjects' databases (`databases`: each row's).
    """
    subjects = np.asarray([str(s) for s in subjects])
    ids = _order(subjects)
    if val_rule not in VAL_RULES:
        raise UserError(f"evaluation.val_rule={val_rule!r}: expected {' or '.join(VAL_RULES)}")
    database: dict[str, str] = {}
    if val_rule == "own-database":
        if databases is None or len(databases) != len(subjects):
            raise ValueError("make_folds: val_rule own-database needs each row's database")
        for s, d in zip(subjects, (str(d) for d in databases)):
            if database.setdefault(s, d) != d:
                raise UserError(
                    f"evaluation.val_rule=own-database: subject {s} is in two databases ({database[s]}, {d})"
                )
    if scheme == "loso":
        groups = [[s] for s in ids]
        names = ids
    elif scheme == "kfold":
        if not 2 <= k <= len(ids):
            raise UserError(f"evaluation.k={k}: subject k-fold needs 2 <= k <= {len(ids)} (the number of subjects)")
        shuffled = list(np.random.default_rng(seed).permutation(ids))
        groups = [sorted(shuffled[i::k]) for i in range(k)]
        names = [f"k{i}" for i in range(k)]
    else:
        raise UserError(f"evaluation.scheme={scheme!r}: expected loso or kfold")
    folds = []
    for index, (name, group) in enumerate(zip(names, groups)):
        rng = np.random.default_rng([seed, index])
        test_set = set(group)
        if val_rule == "own-database":
            val_set = _own_database(test_set, ids, database, name)
        else:
            val_set = _draw_val([s for s in ids if s not in test_set], val_subjects, rng)
        role = np.where(np.isin(subjects, list(test_set)), 2, np.where(np.isin(subjects, list(val_set)), 1, 0))
        folds.append(Fold(index, name, *(np.flatnonzero(role == r) for r in (0, 1, 2))))
    check(folds, subjects)
    return folds


def check(folds: list[Fold], subjects) -> None:
    """Raise LeakageError if any subject sits on two sides of a fold or a sample is not tested exactly once."""
    subjects = np.asarray([str(s) for s in subjects])
    tested = np.zeros(len(subjects), dtype=int)
    for fold in folds:
        sides = {role: set(subjects[rows].tolist()) for role, rows in fold.roles().items()}
        for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
            shared = sorted(sides[a] & sides[b])
            if shared:
                raise LeakageError(f"fold {fold.name}: subject(s) {', '.join(shared)} on both the {a} and {b} side")
        rows = np.concatenate(list(fold.roles().values()))
        if len(np.unique(rows)) != len(rows):
            raise LeakageError(f"fold {fold.name}: a sample has two roles")
        tested[fold.test] += 1
    if len(subjects) and not (tested == 1).all():
        bad = int(np.flatnonzero(tested != 1)[0])
        raise LeakageError(f"sample {bad} (subject {subjects[bad]}) is tested {tested[bad]} times, expected once")


def table(folds: list[Fold], manifest, dataset: str, protocol: str):
    """splits.parquet rows: dataset, protocol, fold, subject, sample_id, role."""
    subjects = manifest["subject"].cast(pl.Utf8).to_numpy()
    ids = manifest["sample_id"].to_numpy()
    parts = []
    for fold in folds:
        for role, rows in fold.roles().items():
            parts.append(
                pl.DataFrame(
                    {
                        "dataset": dataset,
                        "protocol": protocol,
                        "fold": fold.name,
                        "subject": subjects[rows].astype(str),
                        "sample_id": ids[rows].astype(str),
                        "role": role,
                    },
                    schema={
                        "dataset": pl.Utf8,
                        "protocol": pl.Utf8,
                        "fold": pl.Utf8,
                        "subject": pl.Utf8,
                        "sample_id": pl.Utf8,
                        "role": pl.Utf8,
                    },
                )
            )
    return pl.concat(parts) if parts else pl.DataFrame()
