"""MEGC metrics against scikit-learn, bootstrap intervals and the paired test."""

from __future__ import annotations

import numpy as np
import pytest

from hsta_bench.engine import metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(25))
def test_uf1_uar_acc_match_scikit_learn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 8))
    n = int(rng.integers(5, 300))
    y = rng.integers(0, n_classes, n)
    # predictions: partly right, partly random, sometimes a class never predicted
    pred = np.where(rng.random(n) < rng.random(), y, rng.integers(0, n_classes, n))
    s = metrics.scores(y, pred, n_classes)
    present = np.unique(y)
    labels = list(range(n_classes))
    assert s["uf1"] == pytest.approx(sklearn_metrics.f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    assert s["uar"] == pytest.approx(
        sklearn_metrics.recall_score(y, pred, labels=list(present), average="macro", zero_division=0)
    )
    assert s["acc"] == pytest.approx(sklearn_metrics.accuracy_score(y, pred))
    assert s["f1"] == pytest.approx(sklearn_metrics.f1_score(y, pred, labels=labels, average=None, zero_division=0))
    assert (metrics.confusion(y, pred, n_classes) == sklearn_metrics.confusion_matrix(y, pred, labels=labels)).all()


def test_pooling_differs_from_averaging_folds():
    # two folds: pooled UF1 is computed once over all predictions, not as a mean of per-fold UF1
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    pooled = metrics.scores(y, pred, 3)["uf1"]
    per_fold = np.mean([metrics.scores(y[:3], pred[:3], 3)["uf1"], metrics.scores(y[3:], pred[3:], 3)["uf1"]])
    assert pooled != pytest.approx(per_fold)


def subject_data(n_subjects=30, per=8, accuracy=0.7, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"s{i}" for i in range(n_subjects)], per)
    y = rng.integers(0, 3, len(groups))
    pred = np.where(rng.random(len(y)) < accuracy, y, rng.integers(0, 3, len(y)))
    return y, pred, groups


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_subjects():
    y, pred, groups = subject_data(20)
    low, high = metrics.bootstrap_ci(y, pred, groups, 3, "uf1", 1000)
    point = metrics.scores(y, pred, 3)["uf1"]
    assert low < point < high
    y2, pred2, groups2 = subject_data(200)
    low2, high2 = metrics.bootstrap_ci(y2, pred2, groups2, 3, "uf1", 1000)
    assert high2 - low2 < (high - low) * 0.6
    assert metrics.bootstrap_ci(y, pred, groups, 3, "uar", 500, seed=1) == metrics.bootstrap_ci(
        y, pred, groups, 3, "uar", 500, seed=1
    )


def test_bootstrap_resamples_subjects_not_samples():
    # every subject all right or all wrong: subject resampling sees 30 units, so its interval is wider
    # than one built from independent samples would be
    rng = np.random.default_rng(1)
    groups = np.repeat([f"s{i}" for i in range(30)], 10)
    y = rng.integers(0, 3, 300)
    right = np.repeat(rng.random(30) < 0.6, 10)
    pred = np.where(right, y, (y + 1) % 3)
    low, high = metrics.bootstrap_ci(y, pred, groups, 3, "uar", 1000)
    sample_low, sample_high = metrics.bootstrap_ci(y, pred, np.arange(300).astype(str), 3, "uar", 1000)
    assert high - low > 2 * (sample_high - sample_low)


def test_paired_test_separates_a_real_difference_from_none():
    y, good, groups = subject_data(40, accuracy=0.9, seed=2)
    _, bad, _ = subject_data(40, accuracy=0.2, seed=3)
    assert metrics.paired_test(y, good, bad, groups, 3)["p_value"] < 0.01
    same = metrics.paired_test(y, good, good, groups, 3)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    rng = np.random.default_rng(4)  # another model as good, on the same samples: no evidence of a difference
    equal = np.where(rng.random(len(y)) < 0.9, y, rng.integers(0, 3, len(y)))
    assert metrics.paired_test(y, good, equal, groups, 3)["p_value"] > 0.05
