"""The `hsta-bench` command. Each command group lives in its own module; heavy libraries (polars,
torch, ray, cv2) are imported inside the commands that use them, so `hsta-bench --help` stays fast.

Errors a user can cause arrive as `UserError` and leave as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import sys

import typer

from hsta_bench import __version__
from hsta_bench.cli import datasets
from hsta_bench.cli import leaderboard as leaderboard_cmd
from hsta_bench.cli import models as models_cmd
from hsta_bench.cli import profile as profile_cmd
from hsta_bench.cli import run as run_cmd
from hsta_bench.cli import tune as tune_cmd
from hsta_bench.errors import UserError


def _help_types() -> None:
    """typer's help prints Python's spelling of each parameter's type: `<bool>` beside every flag and
    `<list[Path]>` beside an argument. A flag needs none, and an argument is named by its metavar already."""
    from typer import core

    option_type = core.TyperOption.display_type_rich
    core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else option_type(self, ctx)  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


_help_types()

app = typer.Typer(
    name="hsta-bench",
    help="Leakage-free, reproducible benchmarking of micro-expression recognition (HSTA and baselines).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(datasets.app, name="datasets")
app.command("run")(run_cmd.run)
app.command("tune")(tune_cmd.tune)
app.command("profile")(profile_cmd.profile)
app.command("leaderboard")(leaderboard_cmd.leaderboard)
app.command("models")(models_cmd.models)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hsta-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """hsta-bench: MER benchmarks under a leakage-free LOSO protocol."""


def main() -> None:
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
