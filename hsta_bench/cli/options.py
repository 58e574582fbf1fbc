"""Options shared by the commands, spelled the same everywhere (ARCHITECTURE.md, "Contracts")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hsta_bench.errors import UserError

DataRoots = Annotated[
    list[str] | None,
    typer.Option(
        "--data-root",
        metavar="NAME=PATH",
        help="Where your copy of dataset NAME is (repeatable). Datasets without one use their synthetic stand-in.",
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config value, e.g. datasets.casme2.frames=raw (repeatable)."
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", help="A YAML file of config overrides (same shape as configs/)."),
]
Imports = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        metavar="MODULE",
        help="Import MODULE first, to register your own models in it "
        "(repeatable; a module on the Python path or in this directory; README: Your own model).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
# In a log file or a pipe a line is written whole: rich would otherwise wrap at 80 columns and cut a path
# mid-name across two lines
out.soft_wrap = not out.is_terminal
err.soft_wrap = not err.is_terminal


def print_table(table) -> None:
    """A rich table on stdout: as wide as the terminal, or whole in a log file or pipe (its cells unwrapped,
    up to 400 columns)."""
    if out.is_terminal:
        out.print(table)
    else:
        Console(highlight=False, width=400).print(table)


def load_config(config: Path | None, sets: list[str] | None, data_roots: list[str] | None) -> dict:
    from hsta_bench import config as config_mod

    return config_mod.load(config, sets or (), data_roots or ())


def import_models(modules: list[str] | None, resume: str | None = None) -> None:
    """--import: register the models in `modules` in this process and in every worker it starts. A resumed run
    or tune imports what it ran with (its record), so --import with --resume is refused."""
    if resume is not None and modules:
        raise UserError(f"--resume {resume}: it imports the modules it ran with; drop --import")
    if modules:
        from hsta_bench.models import plugins

        plugins.add_imports(modules)


def chosen_datasets(
    names: list[str] | None, all_: bool, named: str = "NAME", every: str = "--all", default_all: bool = False
) -> list[str]:
    """The datasets a command works on: `names` (checked, duplicates dropped) or every registered one.
    `named` / `every` are how the command spells the two choices, for its error lines."""
    from hsta_bench.data import get_source, list_sources

    if all_ and names:
        raise UserError(f"give {named} or {every}, not both")
    if all_ or (default_all and not names):
        return list_sources()
    if not names:
        raise UserError(f"name a dataset with {named} (see `hsta-bench datasets list`) or use {every}")
    for name in names:
        get_source(name)  # an unknown name is one clear line
    return list(dict.fromkeys(names))


def refuse_with_resume(resume: str, options: dict) -> None:
    """A resumed run or tune keeps its own settings: any of `options` (spelling -> value given) is an error."""
    given = [name for name, value in options.items() if value]
    if given:
        raise UserError(f"--resume {resume}: it keeps its own settings; drop {', '.join(given)}")
