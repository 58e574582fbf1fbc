"""`load_manifest`, the one way in to a dataset: its adapter (registry.py) on its data root, or on its
synthetic stand-in (synth/) where none is configured."""

from __future__ import annotations

from pathlib import Path

from hsta_bench import config as config_mod
from hsta_bench.data.manifest import Manifest, ManifestBuilder
from hsta_bench.data.registry import get_source, settings_for
from hsta_bench.data.synth import is_synthetic, standin
from hsta_bench.errors import UserError


def resolve_root(name: str, cfg: dict, announce=None) -> tuple[Path, bool]:
    """The data root of `name` and whether it is a synthetic stand-in (written on first use)."""
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
