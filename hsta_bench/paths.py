"""Where things live: the shipped configs, and the per-user home for caches and synthetic stand-ins."""

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
