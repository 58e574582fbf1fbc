"""What the command line changes (README, "What the command line changes"): a `--set` the run reads wins over
recipe, preset and tuned settings and is recorded as what ran; one it would not read, and a `--data-root` of a
dataset it does not read, are refused; a mistake in a `--set` names the `--set`. Also: `hsta-bench models`, help
without Python's type names, and output that a log keeps whole."""

from __future__ import annotations

import json
import re

import pytest

from helpers import assert_one_line_error, run_cli, run_main
from hsta_bench import config
from hsta_bench.engine.recipes import evaluation_of, recipe
from hsta_bench.models import list_models


def resolved(model: str, preset: str, *sets: str):
    return recipe(model, config.load(sets=sets), preset)


def test_the_command_line_wins_over_preset_recipe_and_tuned_settings():
    assert resolved("ststnet", "smoke").train.epochs == 2  # the preset's, over the recipe's 800
    assert resolved("ststnet", "smoke", "train.epochs=1").train.epochs == 1
    assert resolved("ststnet", "smoke", "models.ststnet.train.epochs=3").train.epochs == 3
    # a model's own setting wins over every model's, whatever the order given
    assert resolved("ststnet", "smoke", "models.ststnet.train.epochs=3", "train.epochs=1").train.epochs == 3
    assert resolved("off_apexnet", "smoke", "models.ststnet.train.epochs=3", "train.epochs=1").train.epochs == 1
    tuned = ("tuned.ststnet.train.lr=0.01",)
    assert resolved("ststnet", "paper", *tuned).train.lr == 0.01
    assert resolved("ststnet", "paper", *tuned, "train.lr=0.002").train.lr == 0.002
    # build overrides and a recipe's own fold settings
    assert resolved("hsta_flow", "paper", "models.hsta_flow.model.layers=1").overrides["layers"] == 1
    cfg = config.load(sets=["evaluation.val_rule=draw", "evaluation.val_subjects=2"])
    evaluation = evaluation_of(recipe("dual_inception", cfg, "paper"), cfg)
    assert (evaluation["val_rule"], evaluation["val_subjects"]) == ("draw", 2)  # its recipe says own-database
    untouched = config.load()
    assert evaluation_of(recipe("dual_inception", untouched, "paper"), untouched)["val_rule"] == "own-database"


@pytest.mark.parametrize("model", list_models())
def test_a_bad_value_is_one_line_naming_its_set_before_anything_starts(capsys, tmp_path, model):
    proc = run_main(
        capsys, "run", "--all-datasets", "--model", model, "--set", "train.lr=abc", "--output", str(tmp_path / "r")
    )
    assert_one_line_error(proc, "--set train.lr=abc: ", "valid number", "'abc'")
    assert proc.returncode == 2
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (("--set", "models.ststnet.train.epoch=3"), "--set models.ststnet.train.epoch=3: unknown setting 'epoch' (did "
         "you mean epochs?"),
        (("--set", "models.ststnet.train.epochs=three"), "--set models.ststnet.train.epochs=three: Input should be a "
         "valid integer"),
        (("--set", "train.epochs=three"), "--set train.epochs=three: Input should be a valid integer"),
        (("--set", "models.ststnet.model.widht=3"), "--set models.ststnet.model.widht=3: model ststnet: cannot be "
         "built with"),
        (("--set", "models.off_apexnet.train.epochs=3"), "--set models.off_apexnet.train.epochs=3: this run trains "
         "ststnet"),
        (("--set", "presets.smoke.train.epochs=3"), "--set presets.smoke.train.epochs=3: this run uses --preset paper"),
        (("--set", "datasets.casme2.frames=raw"), "--set datasets.casme2.frames=raw: this run reads megc2019-flow, "
         "not casme2"),
        (("--set", "tuned.off_apexnet.train.lr=0.1"), "this run trains ststnet, not off_apexnet"),
        (("--set", "tune.trials=3"), "--set tune.trials=3: `run` does not read the tune section"),
        (("--set", "models.ststnet.space.train.lr=off"), "`run` does not read a recipe's space"),
        (("--data-root", "casme2=/nowhere"), "--data-root casme2=/nowhere: this run reads megc2019-flow, not casme2"),
    ],
)  # fmt: skip
def test_an_option_the_run_would_not_read_or_a_bad_set_is_refused_naming_it(capsys, tmp_path, extra, fragment):
    proc = run_main(
        capsys, "run", "--dataset", "megc2019-flow", "--model", "ststnet", "--preset", "paper", *extra,
        "--output", str(tmp_path / "r"),
    )  # fmt: skip
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "r").exists()


def test_a_data_root_of_a_composites_part_is_read(capsys, tmp_path):
    """megc2019-composite is built from casme2, samm and smic: their roots are read (here: refused for being
    empty, not for being unread)."""
    (tmp_path / "empty").mkdir()
    proc = run_main(
        capsys, "run", "--dataset", "megc2019-composite", "--model", "ststnet", "--dry-run",
        "--data-root", f"casme2={tmp_path / 'empty'}",
    )  # fmt: skip
    assert_one_line_error(proc, f"{tmp_path / 'empty'}: no CASME II coding sheet found")  # read, not refused


def test_a_tune_refuses_a_set_of_what_it_searches(capsys, tmp_path):
    proc = run_main(
        capsys, "tune", "--model", "ststnet", "--dataset", "casme2", "--preset", "smoke", "--set", "train.lr=1e-3",
        "--output", str(tmp_path),
    )  # fmt: skip
    assert_one_line_error(proc, "--set train.lr=1e-3: the tune searches train.lr", "--space train.lr=off")


def test_a_run_records_what_the_command_line_set_and_its_log_keeps_lines_whole(tmp_path):
    """One smoke run, its output piped as in a log: `--set train.epochs=1` over the preset's 2 trains one epoch,
    the run records it, its leaderboard's recipe column says so, and the long output path is never cut."""
    output = tmp_path / ("a-rather-long-folder-name-for-results-" * 3) / "results"
    proc = run_cli(
        "run", "--dataset", "casme2", "--model", "ststnet", "--preset", "smoke", "--in-process",
        "--set", "train.epochs=1", "--output", str(output),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = output.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    (ev,) = record["evaluations"]
    assert ev["settings"]["train"]["epochs"] == 1
    page = (run_dir / "leaderboard.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| 1 | ststnet"))
    assert "| smoke + epochs=1 |" in row and "1 epoch, the last epoch's model" in page  # what it trained
    text = proc.stdout + proc.stderr
    assert f"results: {run_dir}  (leaderboard: {run_dir / 'leaderboard.md'})" in text.splitlines()  # one whole line


def test_models_lists_every_registered_model_with_its_size_and_recipe(capsys):
    from hsta_bench.models import count_parameters, meta_model

    proc = run_main(capsys, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(proc.stdout)["models"]}
    assert set(rows) == set(list_models())
    for name, r in rows.items():
        rec = recipe(name, config.load(), "paper")
        assert r["parameters"] == count_parameters(meta_model(name, 3, rec.overrides))
        assert r["train"]["epochs"] == rec.train.epochs and r["recipe"] == rec.source
    assert rows["ststnet"]["parameters"] == 1683 and rows["ststnet"]["inputs"] == {"flow": [3, 28, 28]}
    assert rows["ststnet"]["origin"] == "the release's"
    text = run_main(capsys, "models", "--preset", "smoke", "--set", "train.epochs=4")
    assert text.returncode == 0 and re.search(r"ststnet .*adam lr 5e-05, batch 16, 4 epochs", text.stdout)


@pytest.mark.parametrize(
    "command", [("run",), ("tune",), ("profile",), ("leaderboard",), ("models",), ("datasets", "check")]
)
def test_help_shows_no_python_type_names(capsys, command):
    proc = run_main(capsys, *command, "--help")
    assert proc.returncode == 0
    assert not re.search(r"<(bool|list\[|Path|int|str)", proc.stdout), proc.stdout
