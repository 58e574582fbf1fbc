"""Options shared by the commands, spelled the same everywhere (ARCHITECTURE.md, "Contracts")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

DataRoots = Annotated[
    Optional[list[str]],
    typer.Option("--data-root", metavar="NAME=PATH", help="Where your copy of dataset NAME is (repeatable). "
                 "Datasets without one use their synthetic stand-in."),
]
Sets = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config value, e.g. datasets.casme2.frames=raw (repeatable)."),
]
ConfigFile = Annotated[
    Optional[Path],
    typer.Option("--config", metavar="FILE", help="A YAML file of config overrides (same shape as configs/)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def load_config(config: Path | None, sets: list[str] | None, data_roots: list[str] | None) -> dict:
    from hsta_bench import config as config_mod

    return config_mod.load(config, sets or (), data_roots or ())
