"""Every registered dataset, read from its synthetic stand-in through the adapter for the real layout."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from hsta_bench.data import get_source, list_sources, load_manifest, protocols
from hsta_bench.data.manifest import label_column, schema

ALL = list_sources()


@pytest.fixture(scope="module")
def manifests(cfg):
    return {name: load_manifest(name, cfg) for name in ALL}


def test_registry_has_the_benchmarks():
    assert {"casme2", "samm", "smic", "casme3", "megc2019-composite", "megc2019-flow"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_manifest_has_the_one_schema(manifests, name):
    frame = manifests[name].frame
    assert frame.schema == pl.Schema(schema())
    assert frame.height > 0
    assert frame["sample_id"].is_unique().all()
    assert frame["synthetic"].all() and manifests[name].synthetic
    assert (frame["dataset"] == name).all()


@pytest.mark.parametrize("name", ALL)
def test_standin_is_usable_and_labelled(manifests, name):
    m = manifests[name]
    assert m.usable.height == m.frame.height, [p.line() for p in m.problems if p.severity == "error"]
    source = get_source(name)
    for proto_name in source.protocols:
        proto = protocols.get(proto_name)
        labels = m.frame[label_column(proto_name)].drop_nulls()
        # every class of every protocol the dataset is scored under is represented
        assert set(labels.unique()) == set(proto.classes), proto_name
        usable = m.usable[label_column(proto_name)].drop_nulls()  # the classes the evaluation trains on
        assert set(usable.unique()) == set(proto.classes), proto_name
    assert m.frame["subject"].n_unique() >= 3


@pytest.mark.parametrize("name", [n for n in ALL if get_source(n).inputs == "frames"])
def test_frames_exist_and_bracket_the_apex(manifests, cfg, name):
    frame = manifests[name].frame
    for row in frame.iter_rows(named=True):
        assert row["onset"] <= row["apex"] <= row["offset"]
        assert row["frame_numbers"][0] == row["onset"] and row["frame_numbers"][-1] == row["offset"]
        assert row["apex"] in row["frame_numbers"]
        assert len(row["frame_files"]) == len(row["frame_numbers"])
        assert (Path(row["frame_dir"]) / row["frame_files"][0]).is_file()
        assert row["fps"] == cfg["datasets"][row["source"]]["fps"]


@pytest.mark.parametrize("name", [n for n in ALL if get_source(n).inputs == "flow"])
def test_flow_files_exist(manifests, name):
    frame = manifests[name].frame
    assert all(Path(p).is_file() for p in frame["flow_path"])
    assert all(Path(p).is_file() for p in frame["apex_image"])


def test_subject_ids_are_normalised(manifests):
    patterns = {"casme2": r"^sub\d{2}$", "samm": r"^\d{3}$", "smic": r"^s\d{2}$", "casme3": r"^spNO\.\d+$"}
    for name, pattern in patterns.items():
        assert manifests[name].frame["subject"].str.contains(pattern).all(), name


def test_composite_is_the_protocol_subset_of_its_parts(manifests):
    composite = manifests["megc2019-composite"].frame
    col = label_column("megc2019-composite")
    expected = sum(manifests[p].frame[col].drop_nulls().len() for p in ("casme2", "samm", "smic"))
    assert composite.height == expected
    assert set(composite["source"]) == {"casme2", "samm", "smic"}
    # the two samples the official list leaves out are in CASME II but not in the composite
    left_out = {"casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f"}
    assert left_out <= set(manifests["casme2"].frame["sample_id"])
    assert not left_out & set(composite["sample_id"])


# SMIC-HS apex table (datasets.smic.apex_table): SMIC has no apex annotation; a third-party CSV may give it.


@pytest.fixture(scope="module")
def smic_rows(manifests) -> list[dict]:
    """The SMIC stand-in's samples, each with the spellings of its folders (`s1`, `s1_ne_01`)."""
    rows = list(manifests["smic"].frame.iter_rows(named=True))
    for row in rows:
        folder = Path(row["frame_dir"])
        row["folder_clip"], row["folder_subject"] = folder.name, folder.parent.parent.parent.name
        assert row["folder_subject"] != row["subject"] and row["folder_clip"] != row["clip"]  # s1 vs s01
    assert len(rows) >= 5
    return rows


def _apex_table(path: Path, lines: list[str], header: str = "subject,clip,apex") -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def _table_lines(rows: list[dict]) -> list[str]:
    """One line per sample, apex = onset + 1 (never the middle frame), the four spellings in turn."""
    lines = []
    for k, row in enumerate(rows):
        subject = (row["folder_subject"], row["subject"])[k % 2]
        clip = (row["folder_clip"], row["clip"])[(k // 2) % 2]
        lines.append(f"{subject},{clip},{row['onset'] + 1}")
    return lines


def _smic_with_table(table: Path | str, *data_roots: str):
    from hsta_bench import config

    return load_manifest("smic", config.load(sets=[f"datasets.smic.apex_table={table}"], data_roots=data_roots))


def test_smic_takes_the_middle_frame_without_an_apex_table(smic_rows):
    for row in smic_rows:
        assert row["apex"] == (row["onset"] + row["offset"]) // 2 and row["apex_source"] == "middle"


def test_smic_apex_table_gives_the_apex_in_every_spelling(smic_rows, tmp_path):
    left_out = smic_rows[-1]
    table = _apex_table(tmp_path / "apex.csv", _table_lines(smic_rows[:-1]))
    m = _smic_with_table(table)
    got = {r["sample_id"]: r for r in m.frame.iter_rows(named=True)}
    for row in smic_rows[:-1]:  # s1/s01 and s1_ne_01/s01_ne_01, every combination
        assert (got[row["sample_id"]]["apex"], got[row["sample_id"]]["apex_source"]) == (row["onset"] + 1, "table")
    # a clip the table leaves out keeps the middle frame, and says so
    assert got[left_out["sample_id"]]["apex"] == left_out["apex"]
    assert got[left_out["sample_id"]]["apex_source"] == "middle"
    assert [(p.severity, p.kind, p.sample_id) for p in m.problems] == [
        ("warning", "apex-not-in-table", left_out["sample_id"])
    ]
    assert str(table) in m.problems[0].message and m.usable.height == m.frame.height


def test_smic_apex_table_relative_to_the_data_root(smic_rows, standin_copy):
    root = standin_copy("smic")
    _apex_table(root / "apex.csv", _table_lines(smic_rows), header="Subject, Clip, Apex")  # header as typed
    m = _smic_with_table("apex.csv", f"smic={root}")
    assert not m.problems, [p.line() for p in m.problems]
    assert m.frame["apex_source"].to_list() == ["table"] * len(smic_rows)
    assert m.frame["apex"].to_list() == [r["onset"] + 1 for r in smic_rows]


@pytest.mark.parametrize(
    ("case", "severity", "kind"),
    [
        ("not-a-number", "error", "bad-apex"),
        ("outside", "repaired", "apex-outside"),  # the documented rule (data/clips.py): the middle frame
        ("no-such-clip", "warning", "unknown-clip"),
        ("conflict", "error", "apex-conflict"),
    ],
)
def test_smic_apex_table_row_problems_name_file_and_row(smic_rows, tmp_path, case, severity, kind):
    lines = _table_lines(smic_rows)
    victim = smic_rows[1]
    if case == "not-a-number":
        lines[1] = f"{victim['subject']},{victim['clip']},514x"
    elif case == "outside":
        lines[1] = f"{victim['subject']},{victim['clip']},{victim['offset'] + 1}"
    elif case == "no-such-clip":
        lines.insert(1, "s1,s1_ne_99,1234")
    else:
        lines.insert(2, f"{victim['subject']},{victim['clip']},{victim['onset'] + 2}")
    table = _apex_table(tmp_path / "apex.csv", lines)
    m = _smic_with_table(table)
    assert len(m.problems) == 1, [p.line() for p in m.problems]
    problem = m.problems[0]
    assert (problem.severity, problem.kind) == (severity, kind)
    assert problem.where == f"{table}:row 3", problem.line()  # line 1 is the header
    frame = {r["sample_id"]: r for r in m.frame.iter_rows(named=True)}
    if case == "no-such-clip":
        assert problem.sample_id is None and "s01_ne_99" in problem.message
        assert m.usable.height == m.frame.height
        return
    assert problem.sample_id == victim["sample_id"]
    assert frame[victim["sample_id"]]["usable"] == (severity != "error")
    assert m.usable.height == m.frame.height - (severity == "error")
    if case == "outside":
        assert frame[victim["sample_id"]]["apex"] == victim["apex"]  # the middle frame
        assert frame[victim["sample_id"]]["apex_source"] == "middle"


@pytest.mark.parametrize(
    ("header", "lines", "said"),
    [
        (None, [], "apex table not found"),
        ("subject,clip,apex_frame", ["s1,s1_ne_01,3"], ":row 1: missing column(s) apex"),
        ("subject,clip,apex", [], "no rows below the header"),
    ],
)
def test_smic_apex_table_file_errors_are_one_line(tmp_path, header, lines, said):
    from hsta_bench.errors import UserError

    table = tmp_path / "apex.csv"
    if header is not None:
        _apex_table(table, lines, header)
    with pytest.raises(UserError) as caught:
        _smic_with_table(table)
    assert str(table) in str(caught.value) and said in str(caught.value) and "\n" not in str(caught.value)
