"""Your own model in the benchmark (hsta_bench/models/plugins.py; README, "Your own model"): a package that
declares an entry point (examples/my_mer_model, which `make setup` installs) and a module given with
--import both join the registry and run as the built-in models run; a broken one is one line, before any
fold trains."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, assert_one_line_error, run_cli
from hsta_bench.errors import UserError
from hsta_bench.models import list_models, meta_model, model_inputs
from hsta_bench.models.registry import check_forward, origin

EXAMPLE = REPO / "examples" / "my_mer_model"
HSTA_BENCH = Path(sys.executable).with_name("hsta-bench")  # the console script: no current directory on its path

# A user's module: a model with a name of its own, and the faults a user's model can have, each behind a setting.
USER_MODULE = """
import torch
from torch import nn

from hsta_bench.models import MERModel, register_model


class UserNet(MERModel):
    def __init__(self, num_classes=3, size=28, fault="none"):
        super().__init__()
        self.num_classes, self.fault = num_classes, fault
        self.inputs = {"apexx" if fault == "kind" else "flow": (3, size, size)}
        self.fc = nn.Linear(3 * size * size, num_classes + (1 if fault == "shape" else 0))

    def forward(self, batch):
        x = next(iter(batch.values())).flatten(1)
        if self.fault == "nan":
            x = x * float("nan")
        return self.fc(x)


@register_model(small={"size": 14})
def user_net(num_classes=3, **overrides) -> UserNet:
    return UserNet(num_classes=num_classes, **overrides)
"""


@pytest.fixture
def user_module(tmp_path):
    """A folder holding user_module.py (USER_MODULE), to run commands from."""
    (tmp_path / "user_module.py").write_text(USER_MODULE)
    return tmp_path


def test_the_example_package_is_registered_by_its_entry_point():
    assert "tiny_flow_net" in list_models()
    assert origin("tiny_flow_net") == "entry point tiny_flow_net (my-mer-model 0.1.0)"
    assert origin("ststnet") == "built-in"
    assert model_inputs("tiny_flow_net", 3) == {"flow": (3, 28, 28)}
    check_forward("tiny_flow_net", 3, {})  # the example meets its own contract


def test_the_example_recipe_gives_a_space_the_model_can_be_built_with():
    from hsta_bench import config
    from hsta_bench.models import small_overrides
    from hsta_bench.tuning import space

    dims = space.dimensions("tiny_flow_net", config.load(EXAMPLE / "recipe.yaml"))
    assert {d.name for d in dims} == {"train.lr", "model.dropout"}
    space.check_model_settings("tiny_flow_net", 3, dims, small_overrides("tiny_flow_net"))


def test_inputs_are_read_on_the_meta_device_without_building_weights():
    model = meta_model("hsta_base_224", 3, {})  # 82 M parameters: no memory, no initialisation
    assert all(p.is_meta for p in model.parameters())
    assert model_inputs("hsta_base_224", 3) == model.inputs and set(model.inputs) == {"frames", "special"}


def test_an_imported_model_runs_through_ray_on_every_dataset_it_can_read(user_module, tmp_path):
    """The console script, in the user's folder: --import finds user_module.py there; the run's Ray workers
    import it too (they inherit the module list and the path) and every dataset that gives flow runs it."""
    import subprocess

    out = tmp_path / "out"
    proc = subprocess.run(
        [
            str(HSTA_BENCH),
            "run",
            "--import",
            "user_module",
            "--model",
            "user_net",
            "--all-datasets",
            "--preset",
            "smoke",
            "--set",
            "evaluation.bootstrap=20",
            "--output",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=user_module,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads((out / json.loads(proc.stdout)["run_id"] / "run.json").read_text())
    assert run["dispatch"]["executor"] == "ray" and run["status"] == "finished"
    assert run["imports"] == ["user_module"] and run["model_origins"] == {"user_net": "--import user_module"}
    assert {d for _, d in run["pairs"]} == {"casme2", "samm", "smic", "casme3", "megc2019-composite", "megc2019-flow"}


def test_the_example_package_runs_with_its_own_recipe(tmp_path):
    proc = run_cli(
        "run",
        "--model",
        "tiny_flow_net",
        "--dataset",
        "megc2019-flow",
        "--preset",
        "smoke",
        "--config",
        str(EXAMPLE / "recipe.yaml"),
        "--in-process",
        "--set",
        "evaluation.bootstrap=20",
        "--output",
        str(tmp_path),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads((tmp_path / json.loads(proc.stdout)["run_id"] / "run.json").read_text())
    (evaluation,) = run["evaluations"]
    assert evaluation["train"]["optimizer"] == "adamw" and evaluation["overrides"] == {"size": 14, "width": 16}
    assert evaluation["recipe"] == "models.tiny_flow_net (--config)"  # not a file in configs/models/
    assert run["model_origins"] == {"tiny_flow_net": "entry point tiny_flow_net (my-mer-model 0.1.0)"}
    assert "imports" not in run


@pytest.mark.parametrize(
    "fault, says",
    [
        ("shape", "forward returned (2, 4) for a batch of 2; it must return logits of shape (batch, 3)"),
        ("nan", "the loss of a random batch is nan (not finite) before training"),
        ("kind", "unknown input kind 'apexx'"),
    ],
)
def test_a_broken_user_model_is_one_line_before_any_fold_trains(user_module, tmp_path, fault, says):
    proc = run_cli(
        "run",
        "--import",
        "user_module",
        "--model",
        "user_net",
        "--dataset",
        "megc2019-flow",
        "--preset",
        "smoke",
        "--set",
        f"models.user_net.model.fault={fault}",
        "--config",
        str(_recipe(tmp_path)),
        "--in-process",
        "--output",
        str(tmp_path / "out"),
        cwd=user_module,
    )
    assert_one_line_error(proc, "model user_net", says)
    assert not list((tmp_path / "out").rglob("fold-*.parquet"))  # nothing trained


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text("models:\n  user_net:\n    model: {fault: none}\n")
    return path


@pytest.mark.parametrize(
    "module, says",
    [
        (
            "no_such_module",
            "--import no_such_module: cannot import it (ModuleNotFoundError: No module named 'no_such_module')",
        ),
        ("broken_module", "--import broken_module: cannot import it (ZeroDivisionError: division by zero)"),
        (
            "twice_module",
            "--import twice_module: model 'ststnet' registered twice (by baselines.ststnet and "
            "twice_module); rename one of the builders",
        ),
    ],
)
def test_a_module_that_does_not_import_is_one_line(tmp_path, monkeypatch, module, says):
    """In this process (the CLI turns the UserError into its one line): nothing of a failed module stays
    registered or listed for the workers."""
    from hsta_bench.models import plugins

    (tmp_path / "broken_module.py").write_text("x = 1 / 0\n")
    (tmp_path / "twice_module.py").write_text(
        textwrap.dedent("""
        from hsta_bench.models import register_model

        @register_model
        def ststnet(num_classes=3):
            raise AssertionError("never built")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.ENV, raising=False)
    before = list_models()
    with pytest.raises(UserError) as caught:
        plugins.add_imports([module])
    assert str(caught.value) == says
    assert list_models() == before and plugins.imported() == [] and module not in sys.modules


def test_a_recorded_recipe_source_names_its_recipe():
    from hsta_bench.paths import recipe_of, recipe_source

    assert recipe_source("hsta") == "configs/models/hsta.yaml" and recipe_source(None) == "defaults"
    assert recipe_of("configs/models/hsta_flow.yaml + tuned.hsta_flow") == "hsta_flow"
    assert recipe_of(recipe_source("tiny_flow_net") + " + tuned.tiny_flow_net") == "tiny_flow_net"
    assert recipe_of("defaults") is None


def test_a_recipe_for_no_registered_model_is_refused(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("models:\n  tiny_flow_nett:\n    train: {lr: 1.0e-3}\n")
    proc = run_cli(
        "run",
        "--model",
        "tiny_flow_net",
        "--dataset",
        "casme2",
        "--preset",
        "smoke",
        "--config",
        str(path),
        "--in-process",
        "--output",
        str(tmp_path / "out"),
    )
    assert_one_line_error(proc, "models.tiny_flow_nett: a recipe for no registered model")


def test_a_training_loss_that_becomes_nan_stops_the_fold_with_one_line():
    from hsta_bench.engine.train import FoldData, Inputs, NonFiniteLoss, fit_predict, train_config
    from hsta_bench.models import create_model

    def diverging():  # finite until its first step, then NaN from the second batch on
        model = create_model("tiny_flow_net", 3, size=14)
        model.register_forward_hook(lambda m, args, out: out * float("nan") if m.calls.add_(1) > 1 else out)
        model.register_buffer("calls", torch.zeros(()))
        return model

    rng = np.random.default_rng(0)
    inputs = Inputs({"flow": rng.integers(0, 255, (12, 14, 14, 3), dtype=np.uint8)})
    y = np.arange(12) % 3
    fold = FoldData(inputs, np.arange(8), y[:8], np.zeros(0, int), np.zeros(0, int), np.arange(8, 12))
    cfg = train_config(epochs=3, batch_size=4, warmup_epochs=0)
    with pytest.raises(NonFiniteLoss, match="training loss nan in epoch 1 "):
        fit_predict(diverging, fold, cfg, 3, seed=0)
    assert issubclass(NonFiniteLoss, UserError)  # the CLI's one line


def test_check_forward_accepts_built_in_models_at_small_inputs():
    """The check a user's model meets holds for three of the suite's own (a CNN, HSTA, HTNet; its message is about
    the model, not the check)."""
    from hsta_bench.models import small_overrides

    for name in ("ststnet", "hsta_flow", "htnet_small"):
        check_forward(name, 3, small_overrides(name))
    with pytest.raises(UserError, match="model ststnet: cannot be built with"):
        meta_model("ststnet", 3, {"nonsense": 1})


def test_import_with_resume_is_refused_for_run_and_tune(tmp_path):
    for command in ("run", "tune"):
        proc = run_cli(command, "--resume", "some-run", "--import", "user_module", "--output", str(tmp_path))
        assert_one_line_error(proc, "--resume some-run: it imports the modules it ran with; drop --import")
