"""The leaderboard: runs merged into one comparison people can check (`hsta-bench leaderboard`).

    store.py      a run folder -> entries (provenance) + per-subject confusion counts; runs.csv / counts.csv
    published.py  published reference rows (leaderboard/published.csv), checked
    tables.py     one table per benchmark: rows ranked by pooled UF1, intervals, paired test against the first
    render.py     markdown / CSV / JSON
    plots.py      confusion-matrix PNGs of each table's top rows

Every run also gets its own page, `<run>/leaderboard.md` (render_run), from the same code.
"""

from __future__ import annotations

from pathlib import Path


def settings(cfg: dict | None = None) -> dict:
    """configs/leaderboard.yaml, checked."""
    from hsta_bench import config
    from hsta_bench.errors import UserError

    values = dict((cfg or config.defaults()).get("leaderboard") or {})
    for key, kind in (("alpha", float), ("permutations", int), ("seed", int), ("plots", int)):
        if not isinstance(values.get(key), (int, float)) or isinstance(values.get(key), bool):
            raise UserError(f"leaderboard.{key}: expected a number, got {values.get(key)!r}")
        values[key] = kind(values[key])
    if not 0 < values["alpha"] < 1 or values["permutations"] < 1 or values["plots"] < 0:
        raise UserError("leaderboard: alpha must lie in (0, 1), permutations be >= 1 and plots >= 0")
    return values


def render_run(folder: Path) -> str:
    """The markdown page of one run folder, with the published rows of its benchmarks."""
    from hsta_bench.leaderboard import published, render, store, tables

    s = settings()
    refs = published.default_path(s)
    built = tables.build(store.from_run(Path(folder)), published.read(refs) if refs else [], s)
    return render.markdown(built, s, f"hsta-bench leaderboard {folder}", heading=f"Leaderboard of run {Path(folder).name}")
