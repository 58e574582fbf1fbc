"""`hsta-bench leaderboard`: runs merged into one comparison, per benchmark, with intervals, paired tests,
published rows beside ours and the provenance of every row (hsta_bench/leaderboard/).

The published page is regenerated from the committed store with `make leaderboard`:
    hsta-bench leaderboard --store leaderboard/results --output leaderboard/README.md
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hsta_bench.cli.options import ConfigFile, Json, Sets, err, load_config
from hsta_bench.errors import UserError

FORMATS = ("md", "csv", "json")

RunDirs = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="RUN_DIR", show_default=False, help="Run folders (results/<run_id>) or folders of runs to merge."
    ),
]
StoreDir = Annotated[
    Path | None,
    typer.Option(
        "--store",
        metavar="DIR",
        help=(
            "A results store (runs.csv + counts.csv, and notes.md shown on the page): rendered, and with RUN_DIRs "
            "given, updated with them first."
        ),
    ),
]
References = Annotated[
    Path | None,
    typer.Option(
        "--references",
        metavar="FILE",
        help="Published rows to show beside ours (default: the repository's leaderboard/published.csv).",
    ),
]
Format = Annotated[str, typer.Option("--format", metavar="md|csv|json", help="Markdown (default), CSV or JSON.")]
OutputPath = Annotated[
    Path | None,
    typer.Option(
        "--output",
        metavar="PATH",
        help="Write here (markdown: with the confusion plots in plots/ beside it); default: standard output.",
    ),
]


def leaderboard(
    runs: RunDirs = None,
    store: StoreDir = None,
    references: References = None,
    fmt: Format = "md",
    output: OutputPath = None,
    sets: Sets = None,
    config: ConfigFile = None,
    as_json: Json = False,
) -> None:
    """Rank models per dataset and protocol by UF1 with UAR, accuracy, 95% intervals and paired tests."""
    import sys

    from hsta_bench.io import atomic_write
    from hsta_bench.leaderboard import published, render, settings, tables
    from hsta_bench.leaderboard import store as store_mod

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if as_json and fmt not in ("md", "json"):
        raise UserError(f"--json and --format {fmt}: give one of them")
    fmt = "json" if as_json else fmt
    if not runs and store is None:
        raise UserError("give run folders (RUN_DIR ...) or --store DIR")
    cfg = load_config(config, sets, None)
    s = settings(cfg)
    if references is not None and not references.is_file():
        raise UserError(f"--references {references}: no such file")
    refs_path = references or published.default_path(s)
    refs = published.read(refs_path, cfg) if refs_path else []

    notes: list[str] = []
    merged = store_mod.Store()
    if store is not None and (not runs or (store / "runs.csv").exists()):
        merged = store_mod.read(store)
    if runs:
        merged = merged.merge(store_mod.from_runs(runs, notes))
        if store is not None:
            store_mod.write(merged, store)
    for note in notes:
        err.print(note, markup=False)
    from hsta_bench.leaderboard import recipe_diff

    if store is not None:  # each row's command names its settings file, where the store has it
        where = f"{store.as_posix().rstrip('/')}/settings"
        merged = store_mod.Store(
            [
                {**e, "command": store_mod.reproduce(e, where)} if e["config_key"] in merged.settings else e
                for e in merged.entries
            ],
            merged.counts,
            merged.settings,
        )
    built = tables.build(merged, refs, s, lambda e: recipe_diff.describe(e, merged.settings.get(e["config_key"]), cfg))

    command = [
        "hsta-bench leaderboard",
        # without --store, RUN_DIRs were given (refused above otherwise)
        *([f"--store {store}"] if store is not None else [str(r) for r in runs or []]),
        *([f"--references {references}"] if references else []),
        *([f"--format {fmt}"] if fmt != "md" else []),
        *([f"--output {output}"] if output else []),
    ]
    if fmt == "md":
        drawn = {}
        if output is not None and s.plots:
            from hsta_bench.leaderboard import plots  # matplotlib: only when plots are drawn

            drawn = plots.write(built, output.parent / "plots", s.plots, output.parent)

        def words(name: str) -> str | None:  # the store's own words for its page (render.markdown)
            path = store / name if store is not None else None
            return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None

        notes_link = None
        if store is not None and (store / "notes.md").is_file():
            page_dir = output.parent if output is not None else Path(".")
            notes_link = Path(os.path.relpath(store / "notes.md", page_dir)).as_posix()
        text = render.markdown(
            built,
            s,
            " ".join(command),
            drawn,
            measured=words("measured.md"),
            findings=words("findings.md"),
            notes_link=notes_link,
        )
    elif fmt == "csv":
        text = render.csv_text(built)
    else:
        text = render.json_text(built, s)
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        rows = sum(len(t.rows) for t in built)
        err.print(f"leaderboard: {len(built)} table(s), {rows} row(s) -> {output}")
