"""The quirks of the datasets as distributed (DATASETS.md), each read by the adapters without hand edits."""

from __future__ import annotations

from pathlib import Path

import pytest
from sheet_tools import header_index, read_rows, write_rows

from hsta_bench import config
from hsta_bench.data import load_manifest
from hsta_bench.data.check import passed, summarize
from hsta_bench.data.manifest import label_column


def by_id(manifest):
    return {r["sample_id"]: r for r in manifest.frame.iter_rows(named=True)}


def kinds(manifest):
    return {(p.kind, p.sample_id) for p in manifest.problems}


def test_casme2_2019_sheet_blank_columns_and_slash_apex():
    cfg = config.load(sets=["datasets.casme2.synthetic.layout.sheet_version=20190701"])
    m = load_manifest("casme2", cfg)
    sheet = Path(m.root) / "CASME2-coding-20190701.xlsx"
    header = read_rows(sheet, "Sheet1")[0]
    assert header[2] is None and header[6] is None  # the two blank columns are really there
    row = by_id(m)["casme2/sub04/EP12_01f"]
    assert row["apex_source"] == "middle" and row["apex"] == (row["onset"] + row["offset"]) // 2
    problem = next(p for p in m.problems if p.sample_id == "casme2/sub04/EP12_01f")
    assert (problem.severity, problem.kind) == ("repaired", "apex-unknown")
    assert problem.where.endswith(f"CASME2-coding-20190701.xlsx:row {row['source_row']}")
    assert "'/'" in problem.message
    assert m.usable.height == m.frame.height


def test_casme2_subject_keeps_text_zero_and_frames_are_absolute(cfg):
    m = load_manifest("casme2", cfg)
    rows = read_rows(Path(m.root) / "CASME2-coding-20140508.xlsx", "Sheet1")
    assert rows[1][0].startswith("0")  # Subject written as text '01'
    for r in m.frame.iter_rows(named=True):
        assert r["frame_files"][0] == f"reg_img{r['onset']}.jpg"


def test_casme2_raw_frames_selectable(cfg):
    raw = config.load(sets=["datasets.casme2.synthetic.layout.frames=raw", "datasets.casme2.frames=raw"])
    m = load_manifest("casme2", raw)
    assert "/CASME2_RAW_selected/" in m.frame["frame_dir"][0]
    assert m.frame["frame_files"][0][0].startswith("img")


def test_samm_preamble_and_line_broken_headers(cfg, standin_copy):
    root = standin_copy("samm")
    sheet = root / "SAMM_Micro_FACS_Codes_v2.xlsx"
    rows = read_rows(sheet, "MICRO_ONLY")
    h = header_index(rows)
    assert h > 0 and "\n" in rows[h][3]  # notes above, 'Onset\nFrame'
    m = load_manifest("samm", config.load(data_roots=[f"samm={root}"]))
    assert m.frame["source_row"].min() == h + 2
    # apex outside onset..offset for the known two, repaired by the middle frame
    for sid in ("samm/028/028_4_1", "samm/032/032_3_1"):
        assert ("apex-outside", sid) in kinds(m)
        assert by_id(m)[sid]["apex_source"] == "middle"
    # the same sheet with its header in row 1 (other copies) reads the same samples
    write_rows(sheet, "MICRO_ONLY", rows[h:])
    again = load_manifest("samm", config.load(data_roots=[f"samm={root}"]))
    assert again.frame["sample_id"].to_list() == m.frame["sample_id"].to_list()
    assert again.frame["source_row"].min() == 2


def test_smic_folder_labels_and_subject_spelling(cfg):
    m = load_manifest("smic", cfg)
    root = Path(m.root)
    assert (root / "HS" / "s1" / "micro").is_dir()  # folders say s1 ...
    assert set(m.frame["subject"]) == {"s01", "s02", "s03", "s04"}  # ... ids say s01
    assert all(c.startswith(s + "_") for s, c in zip(m.frame["subject"], m.frame["clip"]))
    assert (root / "HS" / "s7" / "non_micro").is_dir() and "s07" not in set(m.frame["subject"])
    assert set(m.frame["emotion"]) == {"negative", "positive", "surprise"}
    for r in m.frame.iter_rows(named=True):  # no apex annotation: the middle frame, by rule, not a problem
        assert r["apex"] == (r["onset"] + r["offset"]) // 2 and r["apex_source"] == "middle"
    assert not m.problems


def test_casme3_others_case_spno_folders_and_apex_at_onset(cfg):
    m = load_manifest("casme3", cfg)
    frame = m.frame
    assert "Others" in set(frame["emotion"]) and "others" in set(frame["emotion"])
    written_others = frame.filter(frame["emotion"] == "Others")
    assert (written_others[label_column("casme3-7")] == "others").all()
    assert (written_others[label_column("casme3-4")] == "others").all()
    assert written_others[label_column("casme3-3")].is_null().all()
    assert any("/spNo." in d for d in frame["frame_dir"]) and any("/spNO." in d for d in frame["frame_dir"])
    assert frame["clip"].str.contains(r"^[a-z]_\d+$").all()
    warnings = [p for p in m.problems if p.kind == "apex-at-onset"]
    assert len(warnings) == 1 and warnings[0].severity == "warning"
    summary = summarize(m, ("casme3-7",))
    assert passed(summary) and not passed(summary, strict=True)


def test_subject_ids_normalise_however_written():
    """Subject cells as numbers (6, 6.0) or text ('006') normalise to the same id."""
    from hsta_bench.data.sources import casme2, casme3, samm, smic

    assert samm.subject_id("6") == samm.subject_id("6.0") == samm.subject_id("006") == "006"
    assert casme2.subject_id("01") == casme2.subject_id("1") == casme2.subject_id("sub01") == "sub01"
    assert smic.subject_id("s1") == smic.subject_id("s01") == "s01"
    assert smic.clip_id("s1_ne_01") == "s01_ne_01"
    assert casme3.subject_id("spNo.10") == casme3.subject_id("spNO.10") == "spNO.10"
    with pytest.raises(ValueError):
        samm.subject_id("abc")
