"""Configuration as data: defaults from configs/, a user file, --set and --data-root, all checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hsta_bench import config
from hsta_bench.errors import UserError


def test_defaults_hold_every_dataset_and_protocol():
    tree = config.defaults()
    assert set(tree["datasets"]) >= {"casme2", "samm", "smic", "casme3", "megc2019-composite", "megc2019-flow"}
    assert set(tree["protocols"]) == {"megc2019-composite", "casme2-5", "samm-5", "casme3-7", "casme3-4", "casme3-3"}


def test_set_and_data_root_and_file(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("datasets:\n  samm:\n    root: /data/SAMM\n    fps: 100\n")
    tree = config.load(
        user, sets=["datasets.samm.fps=50", "datasets.casme2.frames=raw"], data_roots=["smic=/data/SMIC"]
    )
    assert tree["datasets"]["samm"] == {**config.defaults()["datasets"]["samm"], "root": "/data/SAMM", "fps": 50}
    assert tree["datasets"]["casme2"]["frames"] == "raw"
    assert tree["datasets"]["smic"]["root"] == "/data/SMIC"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"sets": ["datasets.samm.nope=1"]}, "unknown key 'datasets.samm.nope'"),
        ({"sets": ["datasets.samm=1"]}, "is a section"),
        ({"sets": ["novalue"]}, "expected KEY=VALUE"),
        ({"data_roots": ["imaginary=/x"]}, "unknown dataset 'imaginary'"),
    ],
)
def test_mistakes_name_the_option(kwargs, message):
    with pytest.raises(UserError, match=message):
        config.load(**kwargs)


def test_user_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(UserError, match=str(bad)):
        config.load(bad)
    with pytest.raises(UserError, match="cannot read"):
        config.load(tmp_path / "absent.yaml")


def test_typed_sections_check_keys_and_types():
    @dataclass
    class S:
        n: int
        names: tuple[str, ...]
        where: Path | None = None

    s = config.typed(S, {"n": 3, "names": ["a", "b"], "where": "~/x"}, "sec")
    assert s.n == 3 and s.names == ("a", "b") and s.where == Path("~/x").expanduser()
    with pytest.raises(UserError, match=r"sec\.n: expected int"):
        config.typed(S, {"n": "3", "names": []}, "sec")
    with pytest.raises(UserError, match="unknown setting"):
        config.typed(S, {"n": 1, "names": [], "extra": 1}, "sec")
    with pytest.raises(UserError, match="missing setting 'names'"):
        config.typed(S, {"n": 1}, "sec")


def test_exponents_without_a_dot_are_numbers():
    # YAML 1.1 reads `1e-3` as a string; `--set models.ststnet.train.lr=1e-3` must still mean the number
    @dataclass
    class T:
        lr: float

    from hsta_bench.engine.evaluate import recipe

    assert recipe("ststnet", config.load(sets=["models.ststnet.train.lr=1e-3"]), "paper").train.lr == 1e-3
    assert config.typed(T, {"lr": "1e-3"}, "t").lr == 1e-3
    assert config.typed(T, {"lr": "-2.5E+2"}, "t").lr == -250.0
    with pytest.raises(UserError, match=r"t\.lr: expected float, got 'fast'"):
        config.typed(T, {"lr": "fast"}, "t")
