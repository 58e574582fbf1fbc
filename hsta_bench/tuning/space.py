"""Search spaces: what `hsta-bench tune` may change in a model's recipe, and how a sampled point becomes one.

A model recipe (configs/models/*.yaml) lists its space under `space:`, one spec per setting:

    space:
      train: {lr: "loguniform(1.0e-5, 1.0e-3)", weight_decay: "loguniform(0.01, 0.3)"}
      model: {drop_path: "uniform(0.0, 0.3)"}

`train.KEY` is a TrainConfig setting, `model.KEY` a create_model override. Specs: uniform(a, b),
loguniform(a, b), int(a, b), logint(a, b), choice(x, y, ...); `off` (or false) leaves a setting out. On the
command line, `--space train.lr=loguniform(1e-5,1e-2)` replaces one entry (`--set
models.RECIPE.space.train.lr=...` does the same through the config).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import yaml

from hsta_bench import config as config_mod
from hsta_bench.engine.recipes import Recipe, recipe_name
from hsta_bench.engine.train import TrainConfig
from hsta_bench.errors import UserError
from hsta_bench.models import model_inputs

KINDS = ("uniform", "loguniform", "int", "logint", "choice")
# not hyperparameters of a search: the epoch budget is ASHA's, the rest say how or where a run trains
NOT_SEARCHED = {
    "epochs": "the epoch budget is ASHA's (set it with the recipe or the preset)",
    "seed": "seeds are not searched",
    "device": "not a hyperparameter",
    "fold_batch": "not a hyperparameter",
}


@dataclass(frozen=True)
class Dimension:
    section: str  # train | model
    key: str
    kind: str
    args: tuple

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def spec(self) -> str:
        return f"{self.kind}({', '.join(str(a) for a in self.args)})"

    def distribution(self):
        # optuna only here, where the driver builds a study: a trial's worker applies points, it draws none
        import optuna.distributions  # noqa: PLC0415

        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.args))
        low, high = self.args
        if self.kind in ("int", "logint"):
            return optuna.distributions.IntDistribution(int(low), int(high), log=self.kind == "logint")
        return optuna.distributions.FloatDistribution(float(low), float(high), log=self.kind == "loguniform")

    def values(self) -> list:
        """Values a check can build with: the ends of a range, or every choice."""
        return list(self.args)


def _value(text: str):
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse(name: str, spec, where: str) -> Dimension | None:
    """One entry of a space: `name` is train.KEY or model.KEY; None when the spec turns it off."""
    section, _, key = name.partition(".")
    if section not in ("train", "model") or not key or "." in key:
        raise UserError(f"{where}: '{name}' is not a setting to search (expected train.KEY or model.KEY)")
    if spec in (None, False) or (isinstance(spec, str) and spec.strip().lower() == "off"):
        return None
    match = re.fullmatch(r"\s*(\w+)\s*\((.*)\)\s*", str(spec))
    if not match or match.group(1) not in KINDS:
        raise UserError(f"{where}: {name}={spec!r}: expected one of {', '.join(k + '(...)' for k in KINDS)} or off")
    kind = match.group(1)
    args = tuple(_value(a) for a in match.group(2).split(",")) if match.group(2).strip() else ()
    if kind == "choice":
        if len(args) < 2:
            raise UserError(f"{where}: {name}={spec}: a choice needs at least two values")
    else:
        numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
        if len(args) != 2 or not numeric or not args[0] < args[1]:
            raise UserError(f"{where}: {name}={spec}: expected {kind}(low, high) with low < high")
        if kind in ("loguniform", "logint") and args[0] <= 0:
            raise UserError(f"{where}: {name}={spec}: a log scale needs low > 0")
        if kind in ("int", "logint") and not all(isinstance(a, int) for a in args):
            raise UserError(f"{where}: {name}={spec}: {kind} bounds are whole numbers")
    if section == "train":
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        if key not in fields:
            raise UserError(f"{where}: train.{key}: not a training setting (known: {', '.join(sorted(fields))})")
        if key in NOT_SEARCHED:
            raise UserError(f"{where}: train.{key} cannot be searched ({NOT_SEARCHED[key]})")
    return Dimension(section, key, kind, args)


def space_sets(model: str, cfg: dict, items: list[str]) -> list[str]:
    """`--space KEY=SPEC` options as the `--set` overrides they stand for (on the model's recipe)."""
    name = recipe_name(model, cfg)
    sets = []
    for item in items:
        key, spec = config_mod.parse_assignment(item, "--space", "train.KEY=SPEC or model.KEY=SPEC")
        if name is None:
            raise UserError(f"--space {item}: {model} has no recipe in configs/models/ to hold a search space")
        parse(key, spec, f"--space {item}")  # one clear line now rather than a YAML surprise later
        sets.append(f"models.{name}.space.{key}={spec}")
    return sets


def dimensions(model: str, cfg: dict) -> list[Dimension]:
    """The search space of `model` from its recipe, checked."""
    name = recipe_name(model, cfg)
    raw = (cfg["models"].get(name) or {}).get("space") or {} if name else {}
    where = f"configs/models/{name}.yaml space" if name else f"{model}"
    if not isinstance(raw, dict) or set(raw) - {"train", "model"}:
        raise UserError(f"{where}: expected train: and model: mappings")
    dims = []
    for section in ("train", "model"):
        for key, spec in (raw.get(section) or {}).items():
            d = parse(f"{section}.{key}", spec, where)
            if d is not None:
                dims.append(d)
    if not dims:
        raise UserError(f"{model}: nothing to search (its recipe has no space:; add one with --space KEY=SPEC)")
    return dims


def check_model_settings(model: str, n_classes: int, dims: list[Dimension], base_overrides: dict) -> None:
    """Build the model at the ends of every model.* range: an unknown setting, or one that changes the
    inputs the prepared data was made for, is an error before any trial starts."""
    reference = model_inputs(model, n_classes, **base_overrides)
    for d in dims:
        if d.section != "model":
            continue
        for value in d.values():
            try:
                inputs = model_inputs(model, n_classes, **{**base_overrides, d.key: value})
            except UserError as exc:  # the registry's line: the model, the settings, what the builder said
                raise UserError(f"space model.{d.key}={d.spec()}: {exc}") from None
            if inputs != reference:
                raise UserError(f"space model.{d.key}: changes the inputs {model} reads; it cannot be searched")


def distributions(dims: list[Dimension]) -> dict:
    """Optuna distributions keyed as Ray Tune's OptunaSearch flattens nested configs (train/lr)."""
    return {f"{d.section}/{d.key}": d.distribution() for d in dims}


def apply(recipe, params: dict):
    """`recipe` with a sampled point ({"train": {...}, "model": {...}}) applied; checked like a recipe."""
    values = {**dataclasses.asdict(recipe.train), **(params.get("train") or {})}
    train = config_mod.typed(TrainConfig, values, "tuned train").check("tuned train")
    return Recipe(
        train,
        {**recipe.overrides, **(params.get("model") or {})},
        recipe.source + " + searched",
        recipe.resources,
        recipe.evaluation,
    )


def nested(flat: dict) -> dict:
    """{"train.lr": v} or {"train/lr": v} -> {"train": {"lr": v}}."""
    out: dict = {"train": {}, "model": {}}
    for name, value in flat.items():
        section, _, key = name.replace("/", ".").partition(".")
        out[section][key] = value
    return {k: v for k, v in out.items() if v}
