"""Configuration as data: YAML files under configs/, merged with a user file and command-line overrides.

The tree has one section per YAML file in configs/ (`protocols`, `preprocess`, `train`, ...) plus
`datasets`, `models` (training recipes) and `presets`, one entry per file in those folders. A user adjusts it with
`--config FILE` (a YAML file of the same shape), `--set key.path=value` and `--data-root NAME=PATH`
(short for `--set datasets.NAME.root=PATH`). Every key a user sets must already exist, so a typo is an
error naming the option instead of a silently ignored setting. Sections read by code become typed
dataclasses through `typed()`: their field types (pydantic) check what a user wrote; their values
live once, in configs/ (`shipped()` for code without a loaded configuration).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, Strict, TypeAdapter, ValidationError

from hsta_bench.errors import UserError
from hsta_bench.paths import configs_dir


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


@functools.cache
def shipped() -> dict:
    """The shipped configuration tree, read once: the defaults of every setting, for code that builds a
    section without a loaded configuration (tests, helpers). Shared: never change it (load() makes a copy)."""
    return defaults()


def defaults() -> dict:
    """The shipped configuration tree (a fresh copy)."""
    root = configs_dir()
    tree: dict = {path.stem: _read_yaml(path) or {} for path in sorted(root.glob("*.yaml"))}
    for folder in ("datasets", "models", "presets"):
        tree[folder] = {path.stem: _read_yaml(path) or {} for path in sorted((root / folder).glob("*.yaml"))}
    return tree


# Sections whose keys are free (checked later, by the code that reads them): a recipe or preset may set
# any training setting or model override, a search space any of those, not only those its file lists; a
# user's file may add a recipe for a model of their own (`models.NAME`: checked by the commands against
# the registry, cli/run.py check_names). "**" opens every level below.
_OPEN = (
    ("models",),
    ("models", "*", "train"),
    ("models", "*", "model"),
    ("models", "*", "resources"),
    ("models", "*", "evaluation"),  # checked where read (engine/recipes.py FOLD_SETTINGS)
    ("presets", "*", "train"),
    ("presets", "*", "profile"),
    ("models", "*", "space", "**"),
    ("tuned", "**"),
)


# sections a file may add where a shipped recipe has none (what they may hold is checked where they are read)
_ADDABLE = (("models", "*", "evaluation"),)  # a recipe's own fold settings (engine/recipes.py FOLD_SETTINGS)


def _addable(where: str, key: str) -> bool:
    parts = f"{where}{key}".split(".")
    return any(len(parts) == len(p) and all(a == "*" or a == b for a, b in zip(p, parts)) for p in _ADDABLE)


def _is_open(where: str) -> bool:
    parts = where.rstrip(".").split(".")
    for pattern in _OPEN:
        if pattern[-1] == "**":
            if len(parts) >= len(pattern) - 1 and all(a == "*" or a == b for a, b in zip(pattern[:-1], parts)):
                return True
        elif len(parts) == len(pattern) and all(a == "*" or a == b for a, b in zip(pattern, parts)):
            return True
    return False


def _merge(base: dict, update: Mapping, where: str, origin: str) -> None:
    for key, value in update.items():
        if key not in base and (_is_open(where) or _addable(where, key)):
            base[key] = copy.deepcopy(value)
            continue
        if key not in base:
            known = ", ".join(sorted(map(str, base))) or "none"
            raise UserError(f"{origin}: unknown key '{where}{key}' (known at this level: {known})")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise UserError(f"{origin}: '{where}{key}' is a section; set one of its keys instead")
            _merge(base[key], value, f"{where}{key}.", origin)
        else:
            base[key] = value


def parse_assignment(text: str, option: str, form: str = "KEY=VALUE") -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{option} {text!r}: expected {form}")
    return key.strip(), value


def load(
    config_file: Path | None = None,
    sets: Iterable[str] = (),
    data_roots: Iterable[str] = (),
) -> dict:
    """The effective configuration: defaults, then the user's file, then --data-root, then --set."""
    tree = copy.deepcopy(shipped())
    if config_file is not None:
        user = _read_yaml(config_file)
        if user is None:
            user = {}
        if not isinstance(user, Mapping):
            raise UserError(f"{config_file}: expected a mapping at the top level")
        # `about:` is for readers (a leaderboard settings file keeps there what a run takes from the model's code
        # and its command line); no run reads it
        _merge(tree, {k: v for k, v in user.items() if k != "about"}, "", str(config_file))
    for item in data_roots:
        name, path = parse_assignment(item, "--data-root", "NAME=PATH")
        if name not in tree["datasets"]:
            known = ", ".join(sorted(tree["datasets"]))
            raise UserError(f"--data-root {item}: unknown dataset '{name}' (known: {known})")
        if "root" not in tree["datasets"][name]:
            raise UserError(
                f"--data-root {item}: '{name}' has no data root of its own; give the roots of the datasets "
                "it is built from (see `hsta-bench datasets list`)"
            )
        tree["datasets"][name]["root"] = path
    tree = apply_sets(tree, sets)
    tree[COMMAND_LINE] = command_line(sets)
    return tree


# The section of the tree that keeps the command line's settings of what a recipe sets (`--set train.KEY`,
# `evaluation.KEY`, `models.RECIPE.train.KEY`, `.model.KEY`, `.evaluation.KEY`): they win over the recipe, the
# preset and tuned settings (engine/recipes.py), as a user expects of what they typed. It travels with the tree (a run's
# record, so a resumed run resolves the same way); no file can set it.
COMMAND_LINE = "command_line"


def command_line(sets: Iterable[str]) -> list[dict]:
    """The --set assignments that win over recipes and presets: {key, value, option}, in the order given."""
    kept = []
    for item in sets:
        key, raw = parse_assignment(item, "--set")
        parts = key.split(".")
        if (len(parts) == 2 and parts[0] in ("train", "evaluation")) or (
            len(parts) == 4 and parts[0] == "models" and parts[2] in ("train", "model", "evaluation")
        ):
            kept.append({"key": key, "value": _parsed(raw), "option": f"--set {item}"})
    return kept


def _parsed(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def apply_sets(tree: dict, sets: Iterable[str]) -> dict:
    """Apply `key.path=value` overrides to `tree` in place (values parsed as YAML) and return it."""
    for item in sets:
        key, raw = parse_assignment(item, "--set")
        node: Any = _parsed(raw)
        for part in reversed(key.split(".")):
            node = {part: node}
        _merge(tree, node, "", f"--set {item}")
    return tree


_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def _exponent(value: Any) -> Any:
    # YAML 1.1 reads 1e-3 (no dot) as a string; everyone means the number
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()) else value


# The types settings are declared with (pydantic validates them; `typed` reports what it finds). Strict: a
# bool is no int (YAML's `true` is not 1), "3" is no int; a float may be written as an int or as `1e-3`.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, Strict(), BeforeValidator(_exponent)]
ExpandedPath = Annotated[Path, AfterValidator(Path.expanduser)]  # `~` is the user's home


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


@functools.cache
def _fields(cls: type) -> tuple[list[str], dict[str, type]]:
    """The settings of `cls`, and those of them that are sections of their own (dataclasses)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    return names, {n: hints[n] for n in names if isinstance(hints[n], type) and dataclasses.is_dataclass(hints[n])}


def _check_keys(cls: type, mapping: Mapping, where: str, origins: Mapping[str, str] | None = None) -> None:
    """Unknown keys, at every level that is a dataclass (pydantic would ignore them in a stdlib dataclass)."""
    names, sections = _fields(cls)
    unknown = sorted(set(map(str, mapping)) - set(names))
    for name in unknown:  # a setting the command line gave: its option is what to fix
        if origins and name in origins:
            near = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise UserError(f"{origins[name]}: unknown setting {name!r} ({hint}known: {', '.join(names)})")
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(names)})")
    for name, inner in sections.items():
        if isinstance(mapping.get(name), Mapping):
            _check_keys(inner, mapping[name], f"{where}.{name}")


def _located(value: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _message(exc: ValidationError, mapping: Mapping, where: str, origins: Mapping[str, str] | None = None) -> str:
    """A ValidationError as one line naming the setting: the first problem only (the one to fix first).
    The members of a union each report their own error; those become one message ("... or ...")."""
    errors = exc.errors()
    first = errors[0]
    if not first["loc"]:  # a check over several settings (__post_init__ raising ValueError)
        return f"{where}: {first['msg'].removeprefix('Value error, ')}"
    same = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
    path = list(first["loc"])  # where they part is the setting (past it: each union member's tag)
    for e in same[1:]:
        n = 0
        while n < min(len(path), len(e["loc"])) and path[n] == e["loc"][n]:
            n += 1
        path = path[:n]
    if first["type"] == "missing":
        return f"{'.'.join([where, *map(str, path[:-1])])}: missing setting {str(path[-1])!r}"
    name = ".".join([where, *map(str, path)])
    if origins and path and str(path[0]) in origins:  # a value the command line gave: name its option
        name = origins[str(path[0])]
    said: list[str] = []  # "Input should be a valid integer or 'auto'": each member's text, once
    for e in same:
        text = e["msg"].removeprefix("Value error, ")
        if text.removeprefix("Input should be ") not in [s.removeprefix("Input should be ") for s in said]:
            said.append(text.removeprefix("Input should be ") if said else text)
    got = _located(mapping, tuple(path)) if len(same) > 1 else first.get("input")
    return f"{name}: {' or '.join(said)} (got {got!r})"


def typed(cls: type, mapping: Mapping | None, where: str, origins: Mapping[str, str] | None = None):
    """Build dataclass `cls` from a config section, validated by pydantic against its field types (`Int`,
    `Float`, `Literal[...]` for choices, `Field(ge=...)` for ranges); `where` names the section. Every
    problem is one UserError line: `where.setting: what is wrong (got value)`, or, for a setting whose value
    came from an option (`origins`: setting -> `--set ...`), `--set ...: what is wrong (got value)`."""
    mapping = dict(mapping or {})
    _check_keys(cls, mapping, where, origins)
    try:
        return _adapter(cls).validate_python(mapping)
    except ValidationError as exc:
        raise UserError(_message(exc, mapping, where, origins)) from None
