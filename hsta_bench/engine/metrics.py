"""MEGC2019 metrics on pooled predictions, with subject-bootstrap intervals and a paired test.

The predictions of all folds are pooled first, then per class c: F1_c = 2TP / (2TP + FP + FN) and
recall_c = TP / n_c; UF1 and UAR are their unweighted means over the protocol's classes (DATASETS.md).
A class with no samples and no predictions has F1 0 and is left out of UAR (recall is undefined).
Averaging per fold instead gives different, lower numbers, so per-fold figures are reported, never used.
"""

from __future__ import annotations

import numpy as np


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(true, predicted) counts."""
    return np.bincount(np.asarray(y) * n_classes + np.asarray(pred), minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _per_class(cms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F1, recall (nan where a class has no samples) and support of a batch of confusion matrices (B, C, C)."""
    tp = np.diagonal(cms, axis1=-2, axis2=-1).astype(float)
    support = cms.sum(-1).astype(float)
    denom = support + cms.sum(-2)  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    return f1, recall, support


def from_confusion(cm: np.ndarray) -> dict:
    f1, recall, support = _per_class(cm[None])
    f1, recall, support = f1[0], recall[0], support[0]
    n = cm.sum()
    return {
        "uf1": float(f1.mean()),
        "uar": float(np.nanmean(recall)) if (support > 0).any() else 0.0,
        "acc": float(np.trace(cm) / n) if n else 0.0,
        "n": int(n),
        "f1": f1,
        "recall": np.nan_to_num(recall),
        "support": support.astype(int),
    }


def scores(y, pred, n_classes: int) -> dict:
    return from_confusion(confusion(y, pred, n_classes))


def subject_confusions(y, pred, groups, n_classes) -> np.ndarray:
    """(subjects, C, C): one confusion matrix per group (groups in sorted order), so resampling subjects is a
    weighted sum. These counts are all the intervals and the paired test need: the leaderboard keeps them
    instead of per-sample predictions."""
    _, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    flat = inverse * n_classes * n_classes + np.asarray(y) * n_classes + np.asarray(pred)
    counts = np.bincount(flat, minlength=(inverse.max() + 1) * n_classes * n_classes)
    return counts.reshape(-1, n_classes, n_classes)


def _batch_stat(cms: np.ndarray, stat: str) -> np.ndarray:
    """uf1 or uar of a batch of confusion matrices (B, C, C)."""
    f1, recall, _ = _per_class(cms)
    return f1.mean(1) if stat == "uf1" else np.nanmean(recall, axis=1)


def bootstrap_ci(
    y, pred, groups, n_classes: int, stat: str = "uf1", iterations: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the pooled `stat` over resamples of whole subjects (with replacement):
    subjects, not samples, are the independent units under LOSO."""
    return bootstrap_ci_counts(subject_confusions(y, pred, groups, n_classes), stat, iterations, level, seed)


def bootstrap_ci_counts(
    per_subject: np.ndarray, stat: str = "uf1", iterations: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """bootstrap_ci from per-subject confusion matrices (subject_confusions)."""
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(per_subject), np.full(len(per_subject), 1 / len(per_subject)), size=iterations)
    cms = np.einsum("bs,sij->bij", weights, per_subject)
    values = _batch_stat(cms, stat)
    alpha = (1 - level) / 2
    return float(np.nanquantile(values, alpha)), float(np.nanquantile(values, 1 - alpha))


def paired_test(
    y, pred_a, pred_b, groups, n_classes: int, stat: str = "uf1", iterations: int = 5000, seed: int = 0
) -> dict:
    """Two-sided paired permutation test of pooled `stat` between two models on the same samples.

    Under the null the two models are exchangeable within each subject, so each permutation swaps the
    two models' predictions for a random half of the subjects and recomputes the pooled difference.
    """
    return paired_test_counts(
        subject_confusions(y, pred_a, groups, n_classes),
        subject_confusions(y, pred_b, groups, n_classes),
        stat,
        iterations,
        seed,
    )


def paired_test_counts(
    cm_a: np.ndarray, cm_b: np.ndarray, stat: str = "uf1", iterations: int = 5000, seed: int = 0
) -> dict:
    """paired_test from two models' per-subject confusion matrices (the same subjects in the same order,
    and the same samples: each subject's true classes agree)."""
    observed = float(_batch_stat(cm_a.sum(0)[None], stat)[0] - _batch_stat(cm_b.sum(0)[None], stat)[0])
    rng = np.random.default_rng(seed)
    swap = rng.integers(0, 2, size=(iterations, len(cm_a)))[..., None, None]
    perm_a = np.where(swap == 1, cm_b[None], cm_a[None]).sum(1)
    perm_b = np.where(swap == 1, cm_a[None], cm_b[None]).sum(1)
    diffs = _batch_stat(perm_a, stat) - _batch_stat(perm_b, stat)
    p = (1 + np.sum(np.abs(diffs) >= abs(observed) - 1e-12)) / (iterations + 1)
    return {"difference": observed, "p_value": float(p)}
