"""Splits: every sample tested exactly once, no subject on two sides, a planted overlap refused."""

from __future__ import annotations

import numpy as np
import pytest

from hsta_bench.engine import splits
from hsta_bench.engine.splits import Fold, LeakageError
from hsta_bench.errors import UserError


def subjects_of(n_subjects: int = 9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([f"s{rng.integers(n_subjects):02d}" for _ in range(80)])


@pytest.mark.parametrize("scheme,k,val", [("loso", 0, 0), ("loso", 0, 2), ("kfold", 3, 0), ("kfold", 4, 1)])
def test_folds_are_subject_independent_and_cover_every_sample_once(scheme, k, val):
    subjects = subjects_of()
    folds = splits.make_folds(subjects, scheme, k, val_subjects=val, seed=3)
    assert len(folds) == (len(set(subjects)) if scheme == "loso" else k)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(len(subjects)))
    for fold in folds:
        sides = {role: set(subjects[rows]) for role, rows in fold.roles().items()}
        assert (
            not sides["train"] & sides["test"]
            and not sides["val"] & sides["test"]
            and not sides["train"] & sides["val"]
        )
        assert len(sides["val"]) == val
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(subjects)  # nothing dropped
    if scheme == "loso":
        assert [f.name for f in folds] == sorted(set(subjects))
        assert all(len(set(subjects[f.test])) == 1 for f in folds)


def test_folds_are_deterministic_for_a_seed():
    subjects = subjects_of()
    a = splits.make_folds(subjects, "kfold", 3, val_subjects=1, seed=5)
    b = splits.make_folds(subjects, "kfold", 3, val_subjects=1, seed=5)
    c = splits.make_folds(subjects, "kfold", 3, val_subjects=1, seed=6)
    assert all((x.test == y.test).all() and (x.val == y.val).all() for x, y in zip(a, b))
    assert any(len(x.test) != len(y.test) or (x.test != y.test).any() for x, y in zip(a, c))


def test_a_planted_overlap_is_refused():
    subjects = np.array(["a", "a", "b", "b", "c"])
    # sample 1 (subject a) trains while sample 0 (subject a) is tested: a subject on both sides
    leaky = [
        Fold(0, "a", np.array([1, 2, 3]), np.array([], int), np.array([0])),
        Fold(1, "rest", np.array([0]), np.array([], int), np.array([1, 2, 3, 4])),
    ]
    with pytest.raises(LeakageError, match="fold a: subject\\(s\\) a on both the train and test side"):
        splits.check(leaky, subjects)
    val_leak = [Fold(0, "a", np.array([2]), np.array([1, 4]), np.array([0, 1, 2, 3, 4])[:2])]
    with pytest.raises(LeakageError, match="val and test"):
        splits.check(val_leak, subjects)


def test_every_sample_must_be_tested_once():
    subjects = np.array(["a", "b", "c"])
    twice = [
        Fold(0, "a", np.array([1, 2]), np.array([], int), np.array([0])),
        Fold(1, "a2", np.array([1, 2]), np.array([], int), np.array([0])),
    ]
    with pytest.raises(LeakageError, match="tested 2 times"):
        splits.check(twice, subjects)


def test_bad_settings_are_user_errors():
    from hsta_bench.errors import UserError

    with pytest.raises(UserError, match="evaluation.k=1"):
        splits.make_folds(subjects_of(), "kfold", 1)
    with pytest.raises(UserError, match="expected loso or kfold"):
        splits.make_folds(subjects_of(), "random")
    with pytest.raises(UserError, match="only 1 training subjects"):
        splits.make_folds(np.array(["a", "b"]), "loso", val_subjects=1)


def test_split_table_records_every_role():
    import polars as pl

    subjects = subjects_of()
    manifest = pl.DataFrame({"subject": subjects, "sample_id": [f"x/{s}/{i}" for i, s in enumerate(subjects)]})
    folds = splits.make_folds(subjects, "loso", val_subjects=1)
    table = splits.table(folds, manifest, "d", "p")
    assert table.columns == ["dataset", "protocol", "fold", "subject", "sample_id", "role"]
    assert table.height == len(folds) * len(subjects)
    per_fold = table.group_by("fold", "role").agg(pl.col("subject").n_unique())
    assert per_fold.filter(pl.col("role") == "test")["subject"].to_list() == [1] * len(folds)


def composite_of(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of three databases with subjects named as the composite's (sub.. CASME II, 0.. SAMM, s.. SMIC)."""
    rng = np.random.default_rng(seed)
    named = {"casme2": ["sub01", "sub02", "sub03"], "samm": ["006", "007"], "smic": ["s01", "s02", "s03", "s04"]}
    pairs = [(s, db) for db, subs in named.items() for s in subs]
    picks = rng.integers(len(pairs), size=120)
    picks[: len(pairs)] = np.arange(len(pairs))  # every subject has a sample
    return np.array([pairs[i][0] for i in picks]), np.array([pairs[i][1] for i in picks])


@pytest.mark.parametrize("scheme,k", [("loso", 0), ("kfold", 9)])
def test_own_database_validates_on_the_test_subjects_database_and_trains_on_the_others(scheme, k):
    subjects, databases = composite_of()
    folds = splits.make_folds(subjects, scheme, k, seed=1, val_rule="own-database", databases=databases)
    db_of = dict(zip(subjects, databases))
    for fold in folds:
        test, val, train = (set(subjects[fold.roles()[r]]) for r in ("test", "val", "train"))
        own = {db_of[s] for s in test}
        assert val == {s for s in db_of if db_of[s] in own} - test  # every other subject of its database
        assert not val & test and not train & (val | test)
        assert {db_of[s] for s in train}.isdisjoint(own) and train  # the other databases only, and some
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(subjects)
    if scheme == "loso":  # a SAMM subject validates on the other SAMM subject
        fold = next(f for f in folds if f.name == "006")
        assert set(subjects[fold.val]) == {"007"}


def test_own_database_needs_several_databases_and_one_database_a_subject():
    subjects, databases = composite_of()
    with pytest.raises(UserError, match=r"val_rule=own-database: fold .* would train on no subject"):
        splits.make_folds(subjects, val_rule="own-database", databases=np.full(len(subjects), "casme2"))
    moved = databases.copy()
    moved[np.flatnonzero(subjects == "s01")[0]] = "samm"
    with pytest.raises(UserError, match=r"subject s01 is in two databases"):
        splits.make_folds(subjects, val_rule="own-database", databases=moved)
    with pytest.raises(UserError, match=r"evaluation.val_rule='nearby': expected draw or own-database"):
        splits.make_folds(subjects, val_rule="nearby")
