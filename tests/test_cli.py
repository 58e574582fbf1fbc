"""The command line as a user meets it: fast help, lists, synth, check on the stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import assert_one_line_error, run_cli
from hsta_bench.data import list_sources

HEAVY = ("torch", "ray", "cv2", "polars", "fastexcel", "numpy", "optuna")


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom hsta_bench.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "datasets" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY="  # none of the heavy modules was imported


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("hsta-bench ")


def test_list_json_names_every_registered_dataset():
    proc = run_cli("datasets", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == list_sources()
    composite = next(r for r in rows if r["name"] == "megc2019-composite")
    assert composite["built_from"] == ["casme2", "samm", "smic"]


def test_synth_is_idempotent(tmp_path):
    first = run_cli("datasets", "synth", "smic", "--output", str(tmp_path))
    assert first.returncode == 0, first.stderr
    again = run_cli("datasets", "synth", "smic", "--output", str(tmp_path))
    assert again.returncode == 0 and "already there" in again.stdout
    assert (tmp_path / "smic" / "SYNTHETIC.json").is_file()


def test_check_all_passes_on_the_standins():
    proc = run_cli("datasets", "check", "--all", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["dataset"] for r in reports] == list_sources()
    assert all(r["synthetic"] and r["passed"] and r["usable"] == r["samples"] for r in reports)


def test_check_text_report_shows_counts_and_repairs():
    proc = run_cli("datasets", "check", "samm")
    assert proc.returncode == 0
    out = proc.stdout
    assert "synthetic stand-in" in out and "samm-5" in out and "per subject: 006" in out
    assert "repairs applied: apex-outside 2" in out and "028_4_1" in out and "OK" in out


def test_bad_options_are_one_line_errors():
    assert_one_line_error(run_cli("datasets", "check", "nosuch"), "unknown dataset 'nosuch'")
    assert_one_line_error(run_cli("datasets", "check", "casme2", "--set", "datasets.casme2.fram=raw"), "fram")
    assert_one_line_error(run_cli("datasets", "check", "casme2", "--data-root", "casme2"), "NAME=PATH")
    assert_one_line_error(
        run_cli("datasets", "check", "casme2", "--set", "datasets.casme2.fps=fast"), "datasets.casme2.fps"
    )
    assert_one_line_error(
        run_cli("datasets", "check", "megc2019-composite", "--data-root", "megc2019-composite=/x"), "built from"
    )
    assert_one_line_error(run_cli("datasets", "synth", "casme2", "--size", "huge"), "--size huge")
