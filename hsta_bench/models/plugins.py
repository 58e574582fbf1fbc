"""Models from outside this repository: your own, benchmarked beside HSTA and the baselines.

Two ways in, both of which only import a module (its `@register_model` builders do the registering):
- an installed package declaring an entry point in the group `hsta_bench.models` (pyproject.toml:
  `[project.entry-points."hsta_bench.models"] NAME = "your_package.module"`), imported whenever the
  registry is first read, in every process: the CLI, a Ray worker, a test;
- `--import MODULE` on `run`, `tune` and `profile`, for a module on the Python path or in the current
  directory (as `python -m` finds it).

Modules given with --import are kept in the environment variable HSTA_BENCH_IMPORTS (comma-separated),
which the Ray workers of a local instance inherit and a cluster's get through the run's runtime env
(orchestrate/ray_tune.py, with the modules' code when it ships the driver's); every process that reads
the registry imports them first. README, "Your own model", is the contract a model meets.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

from hsta_bench.errors import UserError
from hsta_bench.models.registry import list_models
from hsta_bench.models.registry import origin as model_origin

GROUP = "hsta_bench.models"
BUILT_IN = ("hsta_bench", "baselines")  # the packages whose models are the suite's own
ENV = "HSTA_BENCH_IMPORTS"


def imported() -> list[str]:
    """The modules given with --import in this process (or its parent's, for a Ray worker)."""
    return [name for name in os.environ.get(ENV, "").split(",") if name.strip()]


def add_imports(names: list[str] | None) -> None:
    """Import the modules of --import (one line naming the one that fails) and keep them for the workers."""
    names = [n.strip() for n in names or [] if n.strip()]
    list_models()  # the built-in and installed models first: a name clash then blames the module given here
    for name in names:
        _import(name, f"--import {name}", search_cwd=True)
    if names:
        os.environ[ENV] = ",".join(dict.fromkeys(imported() + names))


def load() -> None:
    """Import every installed plugin (once per process) and every --import module (cheap once imported)."""
    _entry_points()
    for name in imported():
        _import(name, f"--import {name} (from {ENV})", search_cwd=True)


@functools.cache
def _entry_points() -> None:
    for entry in importlib.metadata.entry_points(group=GROUP):
        dist = getattr(entry, "dist", None)
        origin = f"model plugin {entry.name} = {entry.value}" + (
            f" (package {dist.name} {dist.version})" if dist else ""
        )
        _import(entry.module, origin, search_cwd=False)


def _import(name: str, origin: str, search_cwd: bool) -> None:
    if name in sys.modules:
        return
    try:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            cwd = str(Path.cwd())
            # the console script, unlike `python -m`, does not put the current directory on the path
            if not search_cwd or exc.name != name.split(".")[0] or cwd in sys.path:
                raise
            sys.path.append(cwd)
            importlib.import_module(name)
    except UserError as exc:  # a registration refused (a name taken): said with where it came from
        raise UserError(f"{origin}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises on import, in one line
        raise UserError(f"{origin}: cannot import it ({type(exc).__name__}: {exc})") from None


def origin(module: str) -> str:
    """Where a builder's module comes from, for the run record: built-in, an entry point's package, --import."""
    top = module.split(".")[0]
    if top in BUILT_IN:
        return "built-in"
    for entry in importlib.metadata.entry_points(group=GROUP):
        if entry.module.split(".")[0] == top:
            dist = getattr(entry, "dist", None)
            return f"entry point {entry.name}" + (f" ({dist.name} {dist.version})" if dist else "")
    return f"--import {module}"


def shipped(into: Path) -> list[str]:
    """The --import modules' code as Ray's runtime env ships it (py_modules takes folders): a package's
    folder, or a one-file module as a package of that name beside the others in `into`."""
    paths = []
    for name in dict.fromkeys(n.split(".")[0] for n in imported()):
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file is None:
            continue
        if Path(file).name == "__init__.py":
            paths.append(str(Path(file).parent))
        else:
            folder = into / "imported" / name
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, folder / "__init__.py")
            paths.append(str(folder))
    return paths


def record(models: list[str]) -> dict:
    """What a run or tune record keeps of models from outside: the --import modules (its resume imports
    them again) and where each such model came from."""
    outside = {m: o for m in dict.fromkeys(models) if (o := model_origin(m)) != "built-in"}
    return {**({"imports": imported()} if imported() else {}), **({"model_origins": outside} if outside else {})}
