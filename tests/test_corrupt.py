"""Damaged copies: every problem is reported with the file (and sheet row) named, unusable samples and
unreadable trees exit non-zero, and nothing ends in a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sheet_tools import header_index, read_rows, write_rows

from helpers import assert_one_line_error, run_cli
from hsta_bench import config
from hsta_bench.data import load_manifest


def first_sample(root: Path, name: str) -> dict:
    m = load_manifest(name, config.load(data_roots=[f"{name}={root}"]))
    return m.frame.row(0, named=True)


def check(name: str, root: Path, *extra: str):
    return run_cli("datasets", "check", name, "--data-root", f"{name}={root}", *extra)


def check_json(name: str, root: Path, *extra: str):
    proc = check(name, root, "--json", *extra)
    return proc, json.loads(proc.stdout)


def test_deleted_middle_frame_is_repaired_and_named(standin_copy):
    root = standin_copy("casme2")
    s = first_sample(root, "casme2")
    victim = Path(s["frame_dir"]) / s["frame_files"][2]
    victim.unlink()
    proc, report = check_json("casme2", root)
    assert proc.returncode == 0  # still usable: the nearest readable frame stands in
    [problem] = [p for p in report["problems"] if p["kind"] == "missing-frame"]
    assert problem["severity"] == "repaired" and victim.name in problem["message"]
    assert problem["where"] == s["frame_dir"]
    assert check("casme2", root, "--strict").returncode == 1
    assert victim.name in check("casme2", root).stdout


def test_deleted_apex_frame_moves_to_nearest(standin_copy):
    root = standin_copy("samm")
    s = first_sample(root, "samm")
    (Path(s["frame_dir"]) / s["frame_files"][s["frame_numbers"].index(s["apex"])]).unlink()
    after = first_sample(root, "samm")
    assert after["apex"] in (s["apex"] - 1, s["apex"] + 1) and after["apex_source"] == "nearest"
    assert s["apex"] not in after["frame_numbers"]


def test_emptied_clip_folder_makes_the_sample_unusable(standin_copy):
    root = standin_copy("casme3")
    s = first_sample(root, "casme3")
    for n in s["frame_numbers"]:
        (Path(s["frame_dir"]) / f"{n}.jpg").unlink()
    proc, report = check_json("casme3", root)
    assert proc.returncode == 1
    assert report["unusable"] >= 1  # the clip folder holds several samples; the others may survive
    errors = [p for p in report["problems"] if p["severity"] == "error" and p["sample_id"] == s["sample_id"]]
    assert errors and any(p["where"] == s["frame_dir"] for p in errors)


def test_truncated_jpg_is_named(standin_copy):
    root = standin_copy("casme2")
    s = first_sample(root, "casme2")
    victim = Path(s["frame_dir"]) / s["frame_files"][3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    proc, report = check_json("casme2", root)
    [problem] = [p for p in report["problems"] if p["kind"] == "unreadable-image"]
    assert problem["where"] == str(victim) and "truncated JPEG" in problem["message"]
    assert proc.returncode == 0 and report["usable"] == report["samples"]


def test_truncated_bmp_in_smic_is_named(standin_copy):
    root = standin_copy("smic")
    s = first_sample(root, "smic")
    victim = Path(s["frame_dir"]) / s["frame_files"][1]
    victim.write_bytes(victim.read_bytes()[:100])
    proc, report = check_json("smic", root)
    assert any(p["where"] == str(victim) and "truncated BMP" in p["message"] for p in report["problems"])


def test_emptied_sheet_is_one_line_error(standin_copy):
    root = standin_copy("samm")
    sheet = root / "SAMM_Micro_FACS_Codes_v2.xlsx"
    rows = read_rows(sheet, "MICRO_ONLY")
    write_rows(sheet, "MICRO_ONLY", rows[: header_index(rows) + 1])
    assert_one_line_error(check("samm", root), str(sheet), "no samples")


def test_zero_byte_sheet_is_one_line_error(standin_copy):
    root = standin_copy("casme2")
    sheet = root / "CASME2-coding-20140508.xlsx"
    sheet.write_bytes(b"")
    assert_one_line_error(check("casme2", root), str(sheet), "empty file")


def test_garbage_sheet_is_one_line_error(standin_copy):
    root = standin_copy("casme3")
    sheet = root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    sheet.write_bytes(b"this is not a workbook")
    assert_one_line_error(check("casme3", root), str(sheet), "not a readable .xlsx")


def test_missing_column_is_named(standin_copy):
    root = standin_copy("casme2")
    sheet = root / "CASME2-coding-20140508.xlsx"
    rows = read_rows(sheet, "Sheet1")
    rows[0][rows[0].index("ApexFrame")] = "Peak"
    write_rows(sheet, "Sheet1", rows)
    assert_one_line_error(check("casme2", root), str(sheet), "'ApexFrame'")


@pytest.mark.parametrize("name", ["casme2", "samm", "smic", "casme3", "megc2019-flow"])
def test_wrong_root_is_one_line_error(tmp_path, name):
    (tmp_path / "holiday-photos").mkdir()
    assert_one_line_error(check(name, tmp_path), str(tmp_path))


def test_missing_root_is_one_line_error(tmp_path):
    assert_one_line_error(check("samm", tmp_path / "nowhere"), "samm", str(tmp_path / "nowhere"))


def test_another_dataset_is_not_taken_for_this_one(standin_copy):
    assert_one_line_error(check("casme2", standin_copy("samm")), "CASME II")


def test_bad_cells_are_errors_naming_the_row(standin_copy):
    root = standin_copy("casme2")
    sheet = root / "CASME2-coding-20140508.xlsx"
    rows = read_rows(sheet, "Sheet1")
    rows[1][6] = "boredom"  # unknown emotion
    rows[2][2] = "forty"  # onset that is not a frame number
    write_rows(sheet, "Sheet1", rows)
    proc, report = check_json("casme2", root)
    assert proc.returncode == 1 and report["unusable"] == 2
    by_kind = {p["kind"]: p for p in report["problems"]}
    assert by_kind["unknown-emotion"]["where"].endswith(":row 2") and "boredom" in by_kind["unknown-emotion"]["message"]
    assert by_kind["bad-onset"]["where"].endswith(":row 3") and "forty" in by_kind["bad-onset"]["message"]
    text = check("casme2", root)
    assert "FAILED" in text.stdout and "Traceback" not in text.stderr


def test_missing_and_truncated_flow_images(standin_copy):
    root = standin_copy("megc2019-flow")
    flows = sorted((root / "datasets" / "STSNet_whole_norm_u_v_os").iterdir())
    flows[0].unlink()
    flows[1].write_bytes(flows[1].read_bytes()[:60])
    proc, report = check_json("megc2019-flow", root)
    assert proc.returncode == 1 and report["unusable"] == 2
    wheres = {p["where"]: p["kind"] for p in report["problems"]}
    assert wheres[str(flows[0])] == "missing-flow" and wheres[str(flows[1])] == "unreadable-image"
