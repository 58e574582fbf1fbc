"""The dataset registry: one adapter class per dataset name, and `load_manifest`, the one way in.

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
    import hsta_bench.data.sources  # noqa: F401  (registers the adapters)

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


def resolve_root(name: str, cfg: dict, announce=None) -> tuple[Path, bool]:
    """The data root of `name` and whether it is a synthetic stand-in (written on first use)."""
    from hsta_bench.data.synth import is_synthetic, standin

    root = cfg["datasets"][name].get("root")
    if root is None:
        return standin(name, cfg, announce=announce), True
    path = Path(str(root)).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"{name}: data root {path} is not a directory (--data-root {name}=PATH)")
    return path, is_synthetic(path)


def load_manifest(name: str, cfg: dict | None = None, announce=None) -> Manifest:
    """The manifest of dataset `name` under configuration `cfg` (default: the shipped configuration).

    A dataset without a configured root reads its synthetic stand-in, and everything from it is marked.
    `announce(message)` is told when a stand-in has to be written first.
    """
    cfg = cfg if cfg is not None else config_mod.load()
    source = get_source(name)
    if source.parts:
        return source.combine([load_manifest(part, cfg, announce) for part in source.parts])
    settings = settings_for(name, cfg)
    root, synthetic = resolve_root(name, cfg, announce)
    builder = ManifestBuilder(name, root, synthetic)
    source.read(root, settings, builder)
    return builder.build()
