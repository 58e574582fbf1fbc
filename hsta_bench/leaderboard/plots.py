"""Confusion-matrix plots (PNG) of each table's top rows, written beside the page that shows them."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from hsta_bench.io import atomic_write
from hsta_bench.leaderboard.render import plot_name, title
from hsta_bench.leaderboard.tables import Row, Table


def confusion_png(table: Table, row: Row, path: Path) -> None:
    matplotlib.use("Agg")

    cm = row.cm
    share = cm / cm.sum(1, keepdims=True).clip(min=1)  # colour by each true class's share: classes are unbalanced
    n = len(row.classes)
    fig, ax = plt.subplots(figsize=(1.1 * n + 1.6, 1.1 * n + 1.2), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(n), row.classes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), row.classes, fontsize=8)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(f"#{row.rank} {row.entry['model']}: UF1 {row.scores['uf1']:.3f}\n{title(table)}", fontsize=7)
    fig.tight_layout()
    # no timestamp in the file: the same counts give the same bytes
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


def write(tables: list[Table], folder: Path, top: int, relative_to: Path) -> dict:
    """The plots of the first `top` rows of each real-data table into `folder` (stand-ins' confusions say
    nothing about the models); plots an earlier page left there and this one does not show are removed.
    Returns {(table key, rank): path relative to `relative_to`}."""
    written = {}
    for table in tables:
        for row in table.rows[:top] if not table.synthetic else []:
            path = Path(folder) / plot_name(table, row)
            confusion_png(table, row, path)
            written[(table.key, row.rank)] = path.relative_to(relative_to).as_posix()
    shown = {Path(p).name for p in written.values()}
    for stale in Path(folder).glob("confusion-*.png") if Path(folder).is_dir() else []:
        if stale.name not in shown:
            stale.unlink()
    return written
