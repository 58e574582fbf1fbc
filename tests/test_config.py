"""Configuration as data: defaults from configs/, a user file, --set and --data-root, all checked."""

from __future__ import annotations

import dataclasses
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
        n: config.Int
        names: tuple[str, ...]
        where: config.ExpandedPath | None = None

    s = config.typed(S, {"n": 3, "names": ["a", "b"], "where": "~/x"}, "sec")
    assert s.n == 3 and s.names == ("a", "b") and s.where == Path("~/x").expanduser()
    with pytest.raises(UserError, match=r"^sec\.n: Input should be a valid integer \(got '3'\)$"):
        config.typed(S, {"n": "3", "names": []}, "sec")
    with pytest.raises(UserError, match=r"^sec: unknown setting\(s\) extra \(known: n, names, where\)$"):
        config.typed(S, {"n": 1, "names": [], "extra": 1}, "sec")
    with pytest.raises(UserError, match=r"^sec: missing setting 'names'$"):
        config.typed(S, {"n": 1}, "sec")


def test_a_bool_is_not_an_int_nor_an_int_a_bool():
    from hsta_bench.engine.train import train_config

    with pytest.raises(UserError, match=r"^train\.epochs: Input should be a valid integer \(got True\)$"):
        train_config(epochs=True)
    with pytest.raises(UserError, match=r"^train\.augment: Input should be a valid boolean \(got 1\)$"):
        train_config(augment=1)
    with pytest.raises(UserError, match=r"^train\.lr: Input should be a valid number \(got True\)$"):
        train_config(lr=True)
    assert train_config(lr=1).lr == 1.0 and isinstance(train_config(lr=1).lr, float)  # an int is a float


def test_a_choice_outside_its_set_names_the_setting_and_the_choices():
    from hsta_bench.engine.train import train_config

    with pytest.raises(
        UserError, match=r"^train\.optimizer: Input should be 'adamw', 'adam' or 'sgd' \(got 'rmsprop'\)$"
    ):
        train_config(optimizer="rmsprop")
    from hsta_bench.preprocess.settings import from_config

    with pytest.raises(UserError, match=r"^preprocess\.flow\.method: .*'farneback' \(got 'lk'\)$"):
        from_config(config.load(sets=["preprocess.flow.method=lk"]))


def test_a_value_out_of_range_names_the_setting_and_the_value():
    from hsta_bench.engine.train import train_config
    from hsta_bench.leaderboard import settings

    with pytest.raises(UserError, match=r"^train\.lr: Input should be greater than 0 \(got -1\)$"):
        train_config(lr=-1)
    with pytest.raises(UserError, match=r"^train\.betas\.1: Input should be less than 1 \(got 1\.5\)$"):
        train_config(betas=[0.9, 1.5])
    with pytest.raises(UserError, match=r"^leaderboard\.alpha: Input should be less than 1 \(got 2\)$"):
        settings(config.load(sets=["leaderboard.alpha=2"]))


def test_a_setting_that_is_a_number_or_a_word_says_both():
    from hsta_bench.orchestrate.trials import dispatch_config
    from hsta_bench.tuning.nested import tune_config

    with pytest.raises(
        UserError, match=r"^dispatch\.fold_groups: Input should be greater than or equal to 1 or 'auto' \(got 0\)$"
    ):
        dispatch_config(config.load(sets=["dispatch.fold_groups=0"]))
    with pytest.raises(UserError, match=r"^tune\.asha\.grace_period: .* or 'auto' \(got 'soon'\)$"):
        tune_config(config.load(sets=["tune.asha.grace_period=soon"]))
    assert tune_config(config.load(sets=["tune.inner_k=loso"])).inner_k == "loso"
    assert dispatch_config(config.load(sets=["dispatch.fold_groups=3"])).fold_groups == 3


def test_nested_sections_report_their_own_unknown_and_missing_keys():
    from hsta_bench.preprocess.settings import from_config

    tree = config.load()
    tree["preprocess"]["flow"] = {**tree["preprocess"]["flow"], "speed": 1}
    with pytest.raises(UserError, match=r"^preprocess\.flow: unknown setting\(s\) speed \(known: method, "):
        from_config(tree)
    del tree["preprocess"]["flow"]["speed"], tree["preprocess"]["flow"]["size"]
    with pytest.raises(UserError, match=r"^preprocess\.flow: missing setting 'size'$"):
        from_config(tree)


def test_exponents_without_a_dot_are_numbers():
    # YAML 1.1 reads `1e-3` as a string; `--set models.ststnet.train.lr=1e-3` must still mean the number
    @dataclass
    class T:
        lr: config.Float
        betas: tuple[config.Float, ...] = ()

    from hsta_bench.engine.evaluate import recipe

    assert config.load(sets=["models.ststnet.train.lr=1e-3"])["models"]["ststnet"]["train"]["lr"] == "1e-3"
    assert recipe("ststnet", config.load(sets=["models.ststnet.train.lr=1e-3"]), "paper").train.lr == 1e-3
    assert config.typed(T, {"lr": "1e-3"}, "t").lr == 1e-3
    assert config.typed(T, {"lr": "-2.5E+2"}, "t").lr == -250.0
    assert config.typed(T, {"lr": 1, "betas": ["9e-1", 1]}, "t").betas == (0.9, 1.0)
    with pytest.raises(UserError, match=r"^t\.lr: Input should be a valid number \(got 'fast'\)$"):
        config.typed(T, {"lr": "fast"}, "t")
    with pytest.raises(UserError, match=r"^t\.lr: Input should be a valid number \(got '1\.5'\)$"):
        config.typed(T, {"lr": "1.5"}, "t")  # only the exponent form YAML misreads: a quoted number stays text


def _sections():
    """Every settings class built with config.typed from the shipped configuration: (id, class, section, where).
    A new section is covered by adding it here; test_every_typed_caller_is_listed keeps the list complete."""
    from hsta_bench.data.registry import get_source, list_sources
    from hsta_bench.data.synth.plan import SynthSettings
    from hsta_bench.engine.evaluate import EvaluationConfig
    from hsta_bench.engine.train import TrainConfig
    from hsta_bench.leaderboard import Settings as LeaderboardSettings
    from hsta_bench.orchestrate.estimate import EstimateConfig
    from hsta_bench.orchestrate.trials import DispatchConfig
    from hsta_bench.preprocess.settings import PreprocessSettings
    from hsta_bench.profiling.session import ProfileConfig
    from hsta_bench.tuning.nested import TuneConfig

    tree = config.shipped()
    out = [
        ("train", TrainConfig, tree["train"], "train"),
        ("evaluation", EvaluationConfig, tree["evaluation"], "evaluation"),
        ("dispatch", DispatchConfig, tree["dispatch"], "dispatch"),
        ("estimate", EstimateConfig, tree["estimate"], "estimate"),
        ("tune", TuneConfig, tree["tune"], "tune"),
        ("leaderboard", LeaderboardSettings, tree["leaderboard"], "leaderboard"),
        ("preprocess", PreprocessSettings, tree["preprocess"], "preprocess"),
        ("profile", ProfileConfig, tree["profile"], "profile"),
    ]
    for name in list_sources():
        section = {k: v for k, v in tree["datasets"][name].items() if k not in ("root", "synthetic")}
        out.append((f"datasets.{name}", get_source(name).Settings, section, f"datasets.{name}"))
        if "synthetic" in tree["datasets"][name]:
            synthetic = tree["datasets"][name]["synthetic"]
            out.append((f"datasets.{name}.synthetic", SynthSettings, synthetic, f"datasets.{name}.synthetic"))
    for model, recipe in tree["models"].items():  # a recipe's train settings over train.yaml
        values = {**tree["train"], **(recipe.get("train") or {})}
        out.append((f"models.{model}.train", TrainConfig, values, f"models.{model}.train"))
    for preset, spec in tree["presets"].items():
        values = {**tree["train"], **(spec.get("train") or {})}
        out.append((f"presets.{preset}.train", TrainConfig, values, f"presets.{preset}.train"))
        if spec.get("profile"):
            values = {**tree["profile"], **spec["profile"]}
            out.append((f"presets.{preset}.profile", ProfileConfig, values, f"presets.{preset}.profile"))
    return out


@pytest.mark.parametrize("cls,section,where", [s[1:] for s in _sections()], ids=[s[0] for s in _sections()])
def test_the_shipped_configuration_validates(cls, section, where):
    built = config.typed(cls, section, where)
    assert type(built) is cls
    top = [f.name for f in dataclasses.fields(cls)]
    assert set(section) <= set(top)
    for name in set(section) & set(top):  # what the file says is what the code reads (numbers as numbers)
        value = getattr(built, name)
        written = section[name]
        if isinstance(written, str) and isinstance(value, float):  # 1e-3, which YAML 1.1 reads as text
            written = float(written)
        if not dataclasses.is_dataclass(value):
            assert (list(value) if isinstance(value, tuple) else value) == written, name


def test_every_typed_caller_is_listed():
    """Each settings class given to config.typed in hsta_bench is one _sections() validates."""
    import re

    root = Path(config.__file__).parent
    called = set()
    for path in root.rglob("*.py"):
        called |= set(re.findall(r"typed\(\s*([\w.]+)\s*,", path.read_text(encoding="utf-8")))
    assert "TrainConfig" in called and "source.Settings" in called  # the search finds what it should
    called.discard("source.Settings")  # a dataset adapter's: _sections() takes every registered dataset's
    listed = {cls.__name__ for _, cls, _, _ in _sections()}
    assert called <= listed, f"not validated against the shipped configs: {sorted(called - listed)}"


def test_sections_repeat_no_default_of_the_shipped_files():
    """A setting's default lives once, in configs/: no field of a class that reads a whole file has one."""
    for ident, cls, section, _ in _sections():
        if ident.startswith(("models.", "presets.", "datasets.")):
            continue
        with_default = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name in section
            and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
        ]
        assert not with_default, f"{ident}: {with_default} repeat configs/"
