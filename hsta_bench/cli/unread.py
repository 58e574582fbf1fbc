"""Options a command would not read, refused with one line naming the option (README: "What the command line
changes"): a `--set` of another model's recipe, of a preset the run does not use, of a dataset it does not read,
of a section only another command reads, and a `--data-root` of a dataset it does not read. Without this such
an option passes in silence and the run record claims a change that did not happen.

What a command does read, the command line wins for: engine/recipes.py `command_line`.
"""

from __future__ import annotations

from collections.abc import Iterable

from hsta_bench.errors import UserError

# top-level sections a command never reads (a run does not search, a tune's outer run is a run)
_OTHER_COMMANDS = {"run": ("tune", "profile"), "tune": ("profile",)}
# sections of a recipe or preset only another command reads
_RECIPE_PARTS = {"run": ("space",), "tune": ()}
_PRESET_PARTS = {"run": ("profile",), "tune": ("profile",)}


def read_datasets(datasets: Iterable[str]) -> list[str]:
    """The datasets a command reads: those it trains on and those they are built from (a composite's parts)."""
    from hsta_bench.data import get_source  # noqa: PLC0415 - the data layer: once the names are checked

    names = list(dict.fromkeys(datasets))
    for name in list(names):
        names += [part for part in get_source(name).parts if part not in names]
    return names


def refuse_unread(
    command: str,
    sets: Iterable[str],
    data_roots: Iterable[str],
    cfg: dict,
    preset: str,
    models: Iterable[str],
    datasets: Iterable[str],
    searched: Iterable[str] = (),
) -> None:
    """Refuse each of `sets` and `data_roots` that `command` (run or tune) would not read, given the models,
    datasets (those it trains on) and preset it runs with; `searched`: a tune's searched keys (`train.lr`), whose
    value the search decides."""
    from hsta_bench.engine.recipes import recipe_name  # noqa: PLC0415 - torch (TrainConfig)

    models = list(models)
    recipes = list(dict.fromkeys(recipe_name(m, cfg) or m for m in models))
    read = read_datasets(datasets)
    trains = ", ".join(models)
    for item in data_roots:
        name = item.partition("=")[0].strip()
        if name not in read:
            raise UserError(
                f"--data-root {item}: this {command} reads {', '.join(read)}, not {name} (add --dataset {name}, or "
                "drop the option)"
            )
    for item in sets:
        key = item.partition("=")[0].strip()
        parts = key.split(".")
        why = _unread(command, parts, recipes, read, preset, models, trains)
        setting = ".".join(parts[-2:])  # train.lr of train.lr and of models.RECIPE.train.lr
        if why is None and setting in searched and (len(parts) == 2 or (len(parts) == 4 and parts[0] == "models")):
            why = f"the tune searches {setting}, and a searched value wins (stop searching it: --space {setting}=off)"
        if why is not None:
            raise UserError(f"--set {item}: {why}, so it would change nothing")


def _unread(command, parts, recipes: list[str], read, preset, models, trains) -> str | None:
    section, name = parts[0], (parts[1] if len(parts) > 1 else None)
    if section in _OTHER_COMMANDS.get(command, ()):
        return f"`{command}` does not read the {section} section"
    if name is None:
        return None
    if section == "models":
        if name not in recipes:
            return f"this {command} trains {trains}, whose recipes are {', '.join(recipes)}; {name} is not one"
        if len(parts) > 2 and parts[2] in _RECIPE_PARTS.get(command, ()):
            return f"`{command}` does not read a recipe's {parts[2]}"
    if section == "presets":
        if name != preset:
            return f"this {command} uses --preset {preset}, not {name}"
        if len(parts) > 2 and parts[2] in _PRESET_PARTS.get(command, ()):
            return f"`{command}` does not read a preset's {parts[2]}"
    if section == "datasets" and name not in read:
        return f"this {command} reads {', '.join(read)}, not {name}"
    if section == "tuned" and name not in models:
        return f"this {command} trains {trains}, not {name}"
    return None
