"""Synthetic stand-ins: deterministic, in the official layouts, and carrying a real subject-independent signal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hsta_bench import config
from hsta_bench.data import get_source, list_sources, load_manifest
from hsta_bench.data.manifest import label_column
from hsta_bench.data.synth import is_synthetic, standin, write_standin
from hsta_bench.data.synth.faces import displacement, envelope, make_face
from hsta_bench.data.synth.plan import scale_counts

WRITABLE = [n for n in list_sources() if not get_source(n).parts]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", WRITABLE)
def test_standin_is_deterministic(cfg, tmp_path, name):
    a = write_standin(name, cfg, tmp_path / "a", "small")
    b = write_standin(name, cfg, tmp_path / "b", "small")
    assert is_synthetic(a) and tree_digest(a) == tree_digest(b)


def test_changed_settings_make_a_new_standin_and_leave_the_old(cfg):
    first = standin("smic", cfg)
    other = standin("smic", config.load(sets=["datasets.smic.synthetic.seed=99"]))
    assert first != other and is_synthetic(first) and is_synthetic(other)
    assert tree_digest(first) != tree_digest(other)


def test_write_refuses_to_overwrite_a_real_tree(cfg, tmp_path):
    from hsta_bench.errors import UserError

    real = tmp_path / "my-casme2"
    real.mkdir()
    (real / "precious.txt").write_text("data")
    with pytest.raises(UserError, match="not a synthetic stand-in"):
        write_standin("casme2", cfg, real)
    assert (real / "precious.txt").read_text() == "data"


def test_class_counts_follow_the_real_imbalance():
    real = {"others": 99, "disgust": 63, "happiness": 32, "surprise": 25, "repression": 27, "sadness": 7, "fear": 2}
    small = scale_counts(real, 40)
    assert sum(small.values()) == 40 and min(small.values()) >= 1
    assert small["others"] > small["disgust"] > small["happiness"] > small["sadness"]
    assert scale_counts(real, 255) == real


def test_movement_is_subtle_and_follows_the_time_course():
    face = make_face(96, np.random.default_rng(0))
    field = displacement(face, {"mouth_r": (0.8, -0.6)}, amplitude=2.0)
    peak = np.hypot(field[..., 0], field[..., 1]).max()
    assert 1.8 <= peak <= 2.0  # 1-3 px at the apex, localised
    far = np.hypot(field[:20, :20, 0], field[:20, :20, 1]).max()
    assert far < 0.01
    assert envelope(10, 10, 14, 20) == 0 and envelope(14, 10, 14, 20) == 1 and envelope(20, 10, 14, 20) == 0
    assert 0 < envelope(12, 10, 14, 20) < 1 and envelope(9, 10, 14, 20) == 0


@pytest.mark.parametrize(
    "name,protocol",
    [("casme2", "casme2-5"), ("samm", "samm-5"), ("smic", "megc2019-composite"), ("casme3", "casme3-4")],
)
def test_classes_are_separable_across_subjects(cfg, name, protocol):
    """Onset->apex flow, nearest class centroid, leave-one-subject-out: well above the majority class."""
    import cv2

    column = label_column(protocol)
    data = load_manifest(name, cfg).usable.filter(pl.col(column).is_not_null())
    features, labels, subjects = [], [], []
    for r in data.iter_rows(named=True):
        files = dict(zip(r["frame_numbers"], r["frame_files"]))
        onset, apex = (
            cv2.imread(str(Path(r["frame_dir"]) / files[r[k]]), cv2.IMREAD_GRAYSCALE) for k in ("onset", "apex")
        )
        flow = cv2.calcOpticalFlowFarneback(onset, apex, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        features.append(cv2.resize(flow, (12, 12), interpolation=cv2.INTER_AREA).ravel())
        labels.append(r[column])
        subjects.append(r["subject"])
    x, y, s = np.array(features), np.array(labels), np.array(subjects)
    correct = 0
    for subject in np.unique(s):
        train = s != subject
        centroids = {c: x[train & (y == c)].mean(0) for c in np.unique(y[train])}
        for xi, yi in zip(x[~train], y[~train]):
            correct += min(centroids, key=lambda c: np.sum((xi - centroids[c]) ** 2)) == yi
    accuracy = correct / len(y)
    majority = np.unique(y, return_counts=True)[1].max() / len(y)
    assert accuracy >= majority + 0.15, (accuracy, majority)


def test_casme3_clip_folders_go_on_past_z():
    """A full-size CAS(ME)^3 stand-in gives one subject more than 26 videos: their folders go on aa, ab, ..."""
    from hsta_bench.data.sources.casme3 import _letters

    names = [_letters(i) for i in range(26 * 27 + 1)]
    assert names[:2] == ["a", "b"] and names[25:28] == ["z", "aa", "ab"] and names[-1] == "aaa"
    assert len(set(names)) == len(names)
