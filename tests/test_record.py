"""The run record (orchestrate/record.py): run.json read and written as typed attributes, the same JSON a run
has always written; a damaged one is one line naming it."""

from __future__ import annotations

import json

import pytest

from helpers import assert_one_line_error, run_cli
from hsta_bench.errors import UserError
from hsta_bench.orchestrate.record import RunRecord

SMOKE = ["--preset", "smoke", "--set", "evaluation.bootstrap=50"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished in-process run: its folder and its run.json as written (text)."""
    out = tmp_path_factory.mktemp("runs")
    proc = run_cli(
        "run", "--dataset", "casme2", "--model", "off_apexnet", *SMOKE, "--in-process", "--output", str(out), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    path = out / json.loads(proc.stdout)["run_id"]
    return path, (path / "run.json").read_text(encoding="utf-8")


def _written(data: dict) -> str:
    """The text io.write_json writes."""
    return json.dumps(data, indent=2, default=str) + "\n"


def test_a_run_json_round_trips_to_the_dict_and_text_it_was(finished_run, tmp_path):
    path, text = finished_run
    data = json.loads(text)
    record = RunRecord.from_dict(data, path / "run.json")
    assert record.to_dict() == data and list(record.to_dict()) == list(data)  # the same keys, in their order
    assert record.status == "finished" and record.pairs == [["off_apexnet", "casme2"]] and record.resumed is None
    assert record.evaluations and record.evaluations[0]["complete"] is True and record.extra == {}
    record.write(tmp_path)
    assert (tmp_path / "run.json").read_text(encoding="utf-8") == text  # byte for byte
    again = RunRecord.read(tmp_path, "--resume x")
    assert again == record and _written(again.to_dict()) == text


def test_a_new_record_writes_the_keys_of_a_run_in_their_order():
    record = RunRecord(
        run_id="r",
        created="2024-01-01T00:00:00+00:00",
        command=["hsta-bench", "run"],
        preset="smoke",
        pairs=[["ststnet", "casme2"]],
        skipped=[],
        git_commit=None,
        environment={"python": "3"},
        config={"a": 1},
        status="planning",
        extra={"tune": {"tune_id": "t"}},
    )
    head = ["run_id", "created", "command", "preset", "pairs", "skipped", "git_commit", "environment", "config"]
    assert list(record.to_dict()) == [*head, "status", "tune"]  # nothing the run has not reached yet
    assert record.to_dict()["git_commit"] is None  # always written, null outside a git checkout
    record.imports, record.evaluations, record.dispatch, record.trials = ["m"], [{}], {"executor": "in-process"}, []
    record.status, record.seconds, record.incomplete = "failed", 1.5, ["ststnet on casme2"]
    record.failed_trials = [{"trial": "t", "error": "boom"}]
    assert list(record.to_dict()) == [
        *head[:8],
        "imports",
        "config",
        "status",
        "tune",
        "evaluations",
        "dispatch",
        "trials",
        "seconds",
        "incomplete",
        "failed_trials",
    ]


def test_a_resumed_record_keeps_what_it_read_and_adds_after_it():
    data = {
        "run_id": "r",
        "created": "c",
        "command": ["x"],
        "preset": "smoke",
        "pairs": [["ststnet", "casme2"]],
        "skipped": ["note"],
        "git_commit": "abc",
        "environment": {},
        "model_origins": {"user_net": "--import user_module"},
        "imports": ["user_module"],
        "config": {},
        "status": "failed",
        "tune": {"tune_id": "t", "chosen": {}},
        "evaluations": [{"model": "ststnet", "dataset": "casme2", "config_key": "k"}],
        "dispatch": {"executor": "ray"},
        "trials": [{"name": "t0"}],
        "seconds": 3.25,
        "incomplete": ["ststnet on casme2"],
        "failed_trials": [{"trial": "t0", "error": "RuntimeError"}],
        "something_newer": {"kept": True},  # a key this version does not know is kept where it was
    }
    record = RunRecord.from_dict(json.loads(json.dumps(data)), "run.json")
    assert record.to_dict() == data and list(record.to_dict()) == list(data)
    assert record.extra == {"tune": {"tune_id": "t", "chosen": {}}, "something_newer": {"kept": True}}
    assert record.imports == ["user_module"] and record.seconds == 3.25
    # what runner.resume and a finished resume change: the earlier fields stay, new ones come after them
    record.resumed = [{"at": "now", "command": ["y"], "git_commit": "def"}]
    record.status, record.finished, record.seconds = "finished", "later", 5.0
    out = record.to_dict()
    assert list(out) == [*data, "resumed", "finished"]
    assert out["incomplete"] == ["ststnet on casme2"] and out["failed_trials"] == data["failed_trials"]
    assert out["status"] == "finished" and out["seconds"] == 5.0 and out["tune"] == data["tune"]


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (lambda d: [d], "a JSON object expected, found list"),
        (lambda d: {k: v for k, v in d.items() if k != "pairs"}, "no `pairs`"),
        (lambda d: {**d, "pairs": "ststnet@casme2"}, "`pairs` is str"),
        (lambda d: {**d, "config": None}, "`config` is NoneType None, not dict"),
        (lambda d: {**d, "seconds": "long"}, "`seconds` is str"),
        (lambda d: {**d, "resumed": {"at": "x"}}, "`resumed` is dict"),
    ],
)
def test_a_malformed_run_json_is_one_line_naming_it(tmp_path, damage, fragment):
    good = RunRecord(
        run_id="r",
        created="c",
        command=[],
        preset="smoke",
        pairs=[["ststnet", "casme2"]],
        skipped=[],
        git_commit=None,
        environment={},
        config={},
        status="running",
        seconds=1.0,
    ).to_dict()
    (tmp_path / "run.json").write_text(json.dumps(damage(good)), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        RunRecord.read(tmp_path, "--resume r")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'run.json'}: not a run record")
    assert fragment in message, message


def test_resuming_a_malformed_run_json_is_one_line(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps({"run_id": "r", "pairs": 3}), encoding="utf-8")
    assert_one_line_error(
        run_cli("run", "--resume", "r", "--output", str(tmp_path), "--in-process"),
        str(tmp_path / "r" / "run.json"),
        "not a run record",
    )
