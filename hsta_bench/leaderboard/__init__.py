"""The leaderboard: runs merged into one comparison people can check (`hsta-bench leaderboard`).

    store.py      a run folder -> entries (provenance) + per-subject confusion counts; runs.csv / counts.csv
    published.py  published reference rows (leaderboard/published.csv), checked
    tables.py     one table per benchmark: rows ranked by pooled UF1, intervals, paired test against the first
    render.py     markdown / CSV / JSON
    plots.py      confusion-matrix PNGs of each table's top rows

Every run also gets its own page, `<run>/leaderboard.md` (render_run), from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """configs/leaderboard.yaml"""

    alpha: float = 0.05
    permutations: int = 5000
    seed: int = 0
    plots: int = 3
    references: str = "leaderboard/published.csv"


def settings(cfg: dict) -> Settings:
    """The `leaderboard` section of a loaded config, checked (types by config.typed, ranges here)."""
    from hsta_bench import config
    from hsta_bench.errors import UserError

    s = config.typed(Settings, cfg.get("leaderboard"), "leaderboard")
    if not 0 < s.alpha < 1 or s.permutations < 1 or s.plots < 0:
        raise UserError("leaderboard: alpha must lie in (0, 1), permutations be >= 1 and plots >= 0")
    return s


def render_run(folder: Path) -> str:
    """The markdown page of one run folder, with the published rows of its benchmarks."""
    from hsta_bench import config
    from hsta_bench.leaderboard import published, render, store, tables

    cfg = config.defaults()
    s = settings(cfg)
    refs = published.default_path(s)
    built = tables.build(store.from_run(Path(folder)), published.read(refs, cfg) if refs else [], s)
    return render.markdown(
        built, s, f"hsta-bench leaderboard {folder}", heading=f"Leaderboard of run {Path(folder).name}"
    )
