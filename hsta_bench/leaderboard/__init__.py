"""The leaderboard: runs merged into one comparison people can check (`hsta-bench leaderboard`).

    store.py        a run folder -> entries (provenance), per-subject confusion counts and resolved settings;
                    runs.csv / counts.csv / settings/KEY.yaml
    published.py    published reference rows (leaderboard/published.csv), checked
    tables.py       per benchmark: rows ranked by pooled UF1, intervals, paired test against the first; the
                    ranked table (at today's recipes) apart from other settings and released weights
    recipe_diff.py  what a row's recipe is and what it ran differently from that recipe today
    render.py       markdown / CSV / JSON
    plots.py        PNGs: a forest plot of each real table, the confusion matrix of each of its rows

Every run also gets its own page, `<run>/leaderboard.md` (render_run), from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from hsta_bench import config
from hsta_bench.config import Float, Int
from hsta_bench.leaderboard import published, render, store, tables


@dataclass(frozen=True)
class Settings:
    """configs/leaderboard.yaml (every setting's default, and what each means)"""

    alpha: Annotated[Float, Field(gt=0, lt=1)]
    permutations: Annotated[Int, Field(ge=1)]
    seed: Int
    plots: Annotated[Int, Field(ge=0)]
    references: str


def settings(cfg: dict) -> Settings:
    """The `leaderboard` section of a loaded config, checked (config.typed: types, choices and ranges)."""
    return config.typed(Settings, cfg.get("leaderboard"), "leaderboard")


def render_run(folder: Path) -> str:
    """The markdown page of one run folder, with the published rows of its benchmarks."""
    cfg = config.shipped()  # read only: the cached tree, not every YAML file again per run page
    s = settings(cfg)
    refs = published.default_path(s)
    built = tables.build(store.from_run(Path(folder)), published.read(refs, cfg) if refs else [], s)
    return render.markdown(
        built, s, f"hsta-bench leaderboard {folder}", heading=f"Leaderboard of run {Path(folder).name}"
    )
