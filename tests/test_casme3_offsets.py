"""CAS(ME)^3's v2 sheet has three rows whose offset is no frame (spNO.40 onsets 1812 and 2327 with offset 0,
spNO.216 onset 3647 with offset 2694): a tiny copy with those rows' values keeps all three usable, each
repaired by the documented rule and reported with its sheet row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sheet_tools import write_rows

from helpers import run_main
from hsta_bench import config
from hsta_bench.data import load_manifest
from hsta_bench.data.sources.casme3 import repaired_offset

SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
# subject, clip letter, onset, apex, offset, emotion; first frame and last frame in the clip folder
ROWS = [
    ("spNO.1", "a", 100, 105, 120, "disgust", 95, 125),  # lengths 20, 13, 32: median 20
    ("spNO.1", "b", 130, 133, 143, "surprise", 125, 150),
    ("spNO.2", "a", 10, 16, 42, "happy", 5, 45),
    ("spNO.40", "a", 1812, 1818, 0, "disgust", 1805, 1840),  # the real three, as the v2 sheet writes them
    ("spNO.40", "b", 2327, 2327, 0, "others", 2320, 2350),  # apex at the onset: the span must not collapse
    ("spNO.216", "c", 3647, 3655, 2694, "anger", 3640, 3670),
]
REPAIRED = {5: 1832, 6: 2347, 7: 3667}  # sheet row (the header is row 1) -> onset + 20


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("casme3-offsets")
    ok, jpg = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    for subject, letter, *_, first, last in ROWS:
        folder = root / "part_A" / subject / letter / "color"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(first, last + 1):
            (folder / f"{n}.jpg").write_bytes(jpg.tobytes())
    write_rows(
        root / SHEET, "label", [HEADER] + [[s, lab, on, ap, off, "4", "I", e] for s, lab, on, ap, off, e, *_ in ROWS]
    )
    return root


def test_offsets_that_are_no_frame_are_repaired_and_reported(tree):
    m = load_manifest("casme3", config.load(data_roots=[f"casme3={tree}"]))
    assert m.usable.height == m.frame.height == len(ROWS)
    by_row = {r["source_row"]: r for r in m.frame.iter_rows(named=True)}
    repairs = [p for p in m.problems if p.kind == "offset-not-a-frame"]
    assert sorted(p.where for p in repairs) == sorted(f"{tree / SHEET}:row {n}" for n in REPAIRED)
    for p in repairs:
        row = by_row[int(p.where.rsplit(" ", 1)[1])]
        assert p.severity == "repaired" and p.sample_id == row["sample_id"]
        assert row["offset"] == REPAIRED[row["source_row"]] and f"repaired to {row['offset']}" in p.message
        assert row["onset"] <= row["apex"] <= row["offset"] and row["apex_source"] == "sheet"
        assert row["frame_numbers"] == list(range(row["onset"], row["offset"] + 1))
    messages = {p.sample_id: p.message for p in repairs}
    assert messages["casme3/spNO.40/a_1812"].startswith("offset 0 is not a frame")
    assert messages["casme3/spNO.216/c_3647"].startswith("offset 2694 is before onset 3647")
    assert [by_row[n]["offset"] for n in (2, 3, 4)] == [120, 143, 42]  # the other rows as written


def test_datasets_check_lists_the_repairs_and_passes(tree, capsys):
    proc = run_main(capsys, "datasets", "check", "casme3", "--data-root", f"casme3={tree}", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["usable"] == report["samples"] == len(ROWS) and report["repairs"] == {"offset-not-a-frame": 3}
    text = run_main(capsys, "datasets", "check", "casme3", "--data-root", f"casme3={tree}")
    assert text.returncode == 0
    for n, offset in REPAIRED.items():
        assert any(f"{SHEET}:row {n}:" in line and f"repaired to {offset}" in line for line in text.stdout.splitlines())


def test_the_rule_keeps_the_apex_inside_and_stops_at_the_folder():
    assert repaired_offset(1812, 1818, 20, None)[0] == 1832
    assert repaired_offset(1812, 1812, 20, 5000)[0] == 1832  # apex at the onset: still the median span
    assert repaired_offset(1812, 1840, 20, None)[0] == 1840  # a later apex stays inside onset..offset
    assert repaired_offset(1812, 1818, 20, 1825)[0] == 1825  # the clip folder ends first
    assert repaired_offset(1812, None, 20, 1700)[0] == 1832  # a folder ending before the onset: checked later


def test_standin_carries_the_three_rows(cfg):
    m = load_manifest("casme3", cfg)
    repairs = [p for p in m.problems if p.kind == "offset-not-a-frame"]
    assert len(repairs) == 3 and all(p.severity == "repaired" for p in repairs)
    assert sum("is not a frame" in p.message for p in repairs) == 2
    assert m.usable.height == m.frame.height
