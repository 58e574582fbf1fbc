"""Where things live: the shipped configs, and the per-user home for caches and synthetic stand-ins; and how a
record names where a recipe came from (read back by the leaderboard, which must not need the engine)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def configs_dir() -> Path:
    """The `configs/` tree: at the repository top level (editable install) or inside a wheel."""
    for candidate in (PACKAGE_DIR.parent / "configs", PACKAGE_DIR / "_configs"):
        if (candidate / "datasets").is_dir():
            return candidate
    raise RuntimeError(f"hsta-bench is installed without its configs/ (looked beside {PACKAGE_DIR})")


def home() -> Path:
    """Caches and synthetic stand-ins: $HSTA_BENCH_HOME, else the user's cache directory."""
    if env := os.environ.get("HSTA_BENCH_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hsta-bench"


def synthetic_dir() -> Path:
    return home() / "synthetic"


def recipe_source(name: str | None) -> str:
    """Where recipe `name` comes from, as records say it: its file in configs/models/, or a user's --config
    (a `models.NAME` entry that configs/ does not ship), or "defaults" (no recipe: configs/train.yaml)."""
    if name is None:
        return "defaults"
    if (configs_dir() / "models" / f"{name}.yaml").is_file():
        return f"configs/models/{name}.yaml"
    return f"models.{name} (--config)"


def recipe_of(source: str | None) -> str | None:
    """The recipe's name in a recorded `source` (recipe_source's, with " + tuned..." after it), or None."""
    first = (source or "").split(" ")[0]
    if first.startswith("configs/models/") and first.endswith(".yaml"):
        return first[len("configs/models/") : -len(".yaml")]
    return first[len("models.") :] if first.startswith("models.") else None
