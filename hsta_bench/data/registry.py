"""The dataset registry: one adapter class per dataset name (load.py's `load_manifest` is the one way in).

Register an adapter with `@register` (see sources/); everything else (the CLI, tests parametrized over
`list_sources()`, synthetic stand-ins) picks it up by name, with no if-chains on names anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from hsta_bench import config as config_mod
from hsta_bench.data.manifest import Manifest, ManifestBuilder
from hsta_bench.errors import UserError


class DatasetSource:
    """Reads one dataset as distributed into the common manifest (and writes its synthetic stand-in)."""

    name: ClassVar[str]
    title: ClassVar[str]
    inputs: ClassVar[str]  # what a sample provides: "frames" (video clips) or "flow" (precomputed)
    protocols: ClassVar[tuple[str, ...]]  # label protocols it can be scored under; the first is the default
    parts: ClassVar[tuple[str, ...]] = ()  # a composite is built from these datasets' manifests
    # its samples come from several source databases (the manifest's `source`): what a validation rule
    # that holds out the test subject's own database (evaluation.val_rule own-database) needs
    composite: ClassVar[bool] = False
    Settings: ClassVar[type]  # typed view of configs/datasets/<name>.yaml (root and synthetic excluded)

    def read(self, root: Path, settings, builder: ManifestBuilder) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def write_synthetic(self, root: Path, settings, synth) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def combine(self, manifests: list[Manifest]) -> Manifest:  # pragma: no cover - composites only
        raise NotImplementedError


_REGISTRY: dict[str, type[DatasetSource]] = {}


def register(cls: type[DatasetSource]) -> type[DatasetSource]:
    if cls.name in _REGISTRY:
        raise ValueError(f"dataset '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _registry() -> dict[str, type[DatasetSource]]:
    # register on import: the adapters import this module for `register`, so they load when first asked for
    import hsta_bench.data.sources  # noqa: F401, PLC0415

    return _REGISTRY


def list_sources() -> list[str]:
    return list(_registry())


def get_source(name: str) -> DatasetSource:
    registry = _registry()
    if name not in registry:
        raise UserError(f"unknown dataset '{name}' (known: {', '.join(registry)})")
    return registry[name]()


def settings_for(name: str, cfg: dict):
    source = get_source(name)
    section = {k: v for k, v in cfg["datasets"].get(name, {}).items() if k not in ("root", "synthetic")}
    return config_mod.typed(source.Settings, section, f"datasets.{name}")
