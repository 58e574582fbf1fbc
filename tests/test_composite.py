"""The MEGC2019 composite: the official list's rule on full-size trees, and the real precomputed release."""

from __future__ import annotations

import json

import pytest

from helpers import SHARED_FLOW, realdata, run_cli
from hsta_bench import config
from hsta_bench.data import load_manifest
from hsta_bench.data.synth import write_standin

SMALL_FRAMES = [
    f"datasets.{n}.synthetic.{k}" for n in ("casme2", "samm", "smic") for k in ("image_size=24", "clip_frames=[3,4]")
]


@pytest.fixture(scope="module")
def full_trees(tmp_path_factory):
    """Full-size stand-ins (the real numbers of samples and subjects), with tiny frames to stay fast."""
    cfg = config.load(sets=SMALL_FRAMES)
    base = tmp_path_factory.mktemp("full")
    return {name: write_standin(name, cfg, base / name, "full") for name in ("casme2", "samm", "smic")}


def test_full_size_sources_have_the_distributed_numbers(full_trees):
    cfg = config.load(data_roots=[f"{n}={p}" for n, p in full_trees.items()])
    expected = {"casme2": (255, 26), "samm": (159, 29), "smic": (164, 16)}
    for name, (samples, subjects) in expected.items():
        m = load_manifest(name, cfg)
        assert (m.frame.height, m.frame["subject"].n_unique()) == (samples, subjects), name


def test_composite_rule_gives_the_official_442(full_trees):
    args = [a for n, p in full_trees.items() for a in ("--data-root", f"{n}={p}")]
    proc = run_cli("datasets", "check", "megc2019-composite", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["samples"] == 442 and report["subjects"] == 68
    assert report["classes"]["megc2019-composite"] == {"negative": 250, "positive": 109, "surprise": 83}
    assert report["per_source"] == {
        "casme2": {"samples": 145, "subjects": 24},
        "samm": {"samples": 133, "subjects": 28},
        "smic": {"samples": 164, "subjects": 16},
    }
    # SAMM's two annotation errors are repaired and counted, not dropped
    assert report["repairs"] == {"apex-outside": 2}


@realdata
def test_real_precomputed_composite():
    proc = run_cli("datasets", "check", "megc2019-flow", "--data-root", f"megc2019-flow={SHARED_FLOW}", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert not report["synthetic"]
    assert (report["samples"], report["usable"], report["subjects"]) == (442, 442, 68)
    assert report["classes"]["megc2019-composite"] == {"negative": 250, "positive": 109, "surprise": 83}
    assert report["per_source"]["smic"] == {"samples": 164, "subjects": 16}
    assert report["problems"] == []


@realdata
def test_real_smic_crops_follow_imagename():
    m = load_manifest("megc2019-flow", config.load(data_roots=[f"megc2019-flow={SHARED_FLOW}"]))
    row = m.frame.filter(m.frame["sample_id"] == "smic/s01/s01_ne_01").row(0, named=True)
    assert row["flow_path"].endswith("s01_s01_ne_01 .png")
    assert row["apex_image"].endswith("s01_s1_ne_01.jpg")
    assert m.frame["apex_image"].is_not_null().all()
