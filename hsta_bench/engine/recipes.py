"""A model's recipe: how it is trained and built in a run, resolved from the configuration.

configs/models/NAME.yaml   the recipe whose `applies_to` matches the model (or a user's --config)
presets/                   a preset's training settings over it (and its small inputs)
configs/tuned.yaml         what `hsta-bench tune` chose, over both; per fold where a tune chose per fold,
                           each refused on the subjects whose labels chose it (check_tuned_on)
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field

import numpy as np

from hsta_bench import config as config_mod
from hsta_bench.engine.splits import LeakageError
from hsta_bench.engine.train import TrainConfig
from hsta_bench.errors import UserError
from hsta_bench.models import small_overrides
from hsta_bench.paths import recipe_source


@dataclass
class Recipe:
    """How a model is trained and built in a run: TrainConfig plus create_model overrides, and the
    resources one of its trials asks for (empty: configs/dispatch.yaml's)."""

    train: TrainConfig
    overrides: dict
    source: str  # which recipe file (or "defaults")
    resources: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)  # the fold settings the recipe sets (FOLD_SETTINGS)
    options: dict = field(default_factory=dict)  # setting (`lr`, `model.depth`) -> the --set that gave it


# the evaluation settings a recipe may set: how its folds' validation side is made (engine/splits.py)
FOLD_SETTINGS = ("val_rule", "val_subjects")
_FOLD_KEYS = tuple(f"evaluation.{k}" for k in FOLD_SETTINGS)  # on the command line, they win over a recipe's


def recipe_name(model: str, cfg: dict) -> str | None:
    """The recipe (configs/models/NAME.yaml) that applies to `model`: the first whose `applies_to` matches."""
    for name, spec in cfg.get("models", {}).items():
        if any(fnmatch.fnmatch(model, pattern) for pattern in spec.get("applies_to", [name])):
            return name
    return None


def recipe(model: str, cfg: dict, preset: str | None) -> Recipe:
    name = recipe_name(model, cfg)
    found = cfg["models"][name] if name else {}
    source = recipe_source(name)
    values = {**cfg["train"], **(found.get("train") or {})}
    overrides = dict(found.get("model") or {})
    if preset is not None:
        spec = cfg.get("presets", {}).get(preset)
        if spec is None:
            raise UserError(f"--preset {preset}: unknown preset (known: {', '.join(cfg.get('presets', {}))})")
        values.update(spec.get("train") or {})
        if spec.get("small_inputs"):
            overrides = {**small_overrides(model), **overrides}
    tuned = tuned_entry(cfg, model)
    if tuned.get("train") or tuned.get("model"):
        values.update(tuned.get("train") or {})
        overrides.update(tuned.get("model") or {})
        source += f" + tuned.{model}"
    given, origins = command_line(cfg, name)
    if given["train"] or given["model"]:
        values.update(given["train"])
        overrides.update(given["model"])
        source += " + command line"
    train = config_mod.typed(TrainConfig, values, f"train ({model}, {source})", origins).check("train")
    evaluation = {**(found.get("evaluation") or {}), **given["evaluation"]}
    if set(evaluation) - set(FOLD_SETTINGS):
        unknown = ", ".join(sorted(set(evaluation) - set(FOLD_SETTINGS)))
        raise UserError(f"{source}: evaluation.{unknown}: a recipe may set only {', '.join(FOLD_SETTINGS)}")
    return Recipe(train, overrides, source, dict(found.get("resources") or {}), evaluation, origins)


def command_line(cfg: dict, name: str | None) -> tuple[dict[str, dict], dict[str, str]]:
    """What the command line sets for the model whose recipe is `name`: {"train", "model", "evaluation"} (every
    model's `--set train.KEY` and `evaluation.val_rule` / `val_subjects`, then this recipe's `--set
    models.NAME.train.KEY` / `.model.KEY` / `.evaluation.KEY` over them), and
    for each setting the option that gave it (`lr`, `model.depth`: config.COMMAND_LINE: the command line wins over
    recipe, preset and tuned settings)."""
    given: dict[str, dict] = {"train": {}, "model": {}, "evaluation": {}}
    origins: dict[str, str] = {}
    assignments = cfg.get(config_mod.COMMAND_LINE) or []
    general = [a for a in assignments if a["key"].startswith("train.") or a["key"] in _FOLD_KEYS]
    own = [a for a in assignments if name is not None and a["key"].startswith(f"models.{name}.")]
    for a in general + own:  # a model's own setting over every model's
        *_, section, key = a["key"].split(".")
        given[section][key] = a["value"]
        origins[key if section == "train" else f"{section}.{key}"] = a["option"]
    return given, origins


def evaluation_of(rec: Recipe, cfg: dict) -> dict:
    """configs/evaluation.yaml's settings with the recipe's own fold settings over them."""
    return {**cfg["evaluation"], **rec.evaluation}


def tuned_entry(cfg: dict, model: str) -> dict:
    """configs/tuned.yaml's entry for `model` (settings over its recipe and the preset), checked for shape."""
    entry = (cfg.get("tuned") or {}).get(model) or {}
    if not isinstance(entry, dict) or set(entry) - {"train", "model", "folds", "tuned_on"}:
        raise UserError(f"tuned.{model}: expected a mapping of train, model, folds and tuned_on")
    for key in ("train", "model", "folds", "tuned_on"):
        if not isinstance(entry.get(key) or {}, dict):
            raise UserError(f"tuned.{model}.{key}: expected a mapping")
    return entry


def check_tuned_on(tuned_on: dict | None, tested: np.ndarray, synthetic: bool, where: str) -> None:
    """Refuse settings chosen with the labels of a subject they would now be tested on. `tuned_on` is what
    `hsta-bench tune` records with them: {tune, synthetic, subjects: [source/subject, ...]}."""
    if not tuned_on or bool(tuned_on.get("synthetic")) != synthetic:  # stand-ins and real data share names only
        return
    shared = sorted(set(tuned_on.get("subjects") or ()) & set(tested.tolist()))
    if shared:
        more = f" and {len(shared) - 3} more" if len(shared) > 3 else ""
        raise LeakageError(
            f"{where} was chosen with the labels of subject(s) this run tests ({', '.join(shared[:3])}{more}; "
            f"tune {tuned_on.get('tune', '?')}): their scores would not be test scores. The tune's outer "
            "run is the tuned model's test score; use these settings on other subjects"
        )


def fold_recipes(
    model: str, dataset: str, folds: list, base: Recipe, cfg: dict, keys: np.ndarray, synthetic: bool
) -> dict[int, Recipe]:
    """The recipes of single folds (configs/tuned.yaml, `MODEL.folds.DATASET.FOLD`) over `base`, by fold index;
    `keys` are the rows' source/subject names, to check each fold's `tuned_on` against its test subjects."""
    entries = (tuned_entry(cfg, model).get("folds") or {}).get(dataset) or {}
    index = {f.name: f.index for f in folds}
    out = {}
    for name, spec in entries.items():
        where = f"tuned.{model}.folds.{dataset}.{name}"
        if str(name) not in index:
            raise UserError(f"{where}: {dataset} has no fold {name!s} (folds: {', '.join(index)})")
        if not isinstance(spec, dict) or set(spec) - {"train", "model", "tuned_on"}:
            raise UserError(f"{where}: expected a mapping of train, model and tuned_on")
        check_tuned_on(spec.get("tuned_on"), keys[folds[index[str(name)]].test], synthetic, where)
        values = {**asdict(base.train), **(spec.get("train") or {})}
        train = config_mod.typed(TrainConfig, values, where).check(where)
        out[index[str(name)]] = Recipe(
            train,
            {**base.overrides, **(spec.get("model") or {})},
            f"{base.source} + {where}",
            base.resources,
            base.evaluation,
        )
    return out
