"""Configuration as data: YAML files under configs/, merged with a user file and command-line overrides.

The tree has one section per YAML file in configs/ (`protocols`, `preprocess`, `train`, ...) plus
`datasets`, `models` (training recipes) and `presets`, one entry per file in those folders. A user adjusts it with
`--config FILE` (a YAML file of the same shape), `--set key.path=value` and `--data-root NAME=PATH`
(short for `--set datasets.NAME.root=PATH`). Every key a user sets must already exist, so a typo is an
error naming the option instead of a silently ignored setting. Sections read by code become typed
dataclasses through `typed()`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

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


def defaults() -> dict:
    """The shipped configuration tree."""
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
    ("presets", "*", "train"),
    ("presets", "*", "profile"),
    ("models", "*", "space", "**"),
    ("tuned", "**"),
)


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
        if key not in base and _is_open(where):
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
    tree = copy.deepcopy(defaults())
    if config_file is not None:
        user = _read_yaml(config_file)
        if user is None:
            user = {}
        if not isinstance(user, Mapping):
            raise UserError(f"{config_file}: expected a mapping at the top level")
        _merge(tree, user, "", str(config_file))
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
    return apply_sets(tree, sets)


def apply_sets(tree: dict, sets: Iterable[str]) -> dict:
    """Apply `key.path=value` overrides to `tree` in place (values parsed as YAML) and return it."""
    for item in sets:
        key, raw = parse_assignment(item, "--set")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        _merge(tree, node, "", f"--set {item}")
    return tree


_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except UserError as exc:
                errors.append(exc)
        raise errors[0]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return tuple(_check_type(v, args[0], where) for v in value) if args else tuple(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return {k: _check_type(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; everyone means the number
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise UserError(f"{where}: expected a path, got {value!r}")
        return Path(value).expanduser()
    if isinstance(hint, type) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise UserError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def typed(cls: type, mapping: Mapping | None, where: str):
    """Build dataclass `cls` from a config section, checking keys and types; `where` names the section."""
    mapping = dict(mapping or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    values = {}
    for name, field in fields.items():
        if name in mapping:
            values[name] = _check_type(mapping[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UserError(f"{where}: missing setting '{name}'")
    return cls(**values)
