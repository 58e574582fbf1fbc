"""The page's pictures (PNG), written beside it: a forest plot of each real table (every row's UF1 with its
subject-bootstrap interval, the published numbers marked) and the confusion matrix of each of its rows."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from hsta_bench.io import atomic_write
from hsta_bench.leaderboard.render import forest_name, plot_name, title
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


def forest_png(table: Table, path: Path) -> None:
    """Every row's pooled UF1 with its 95% interval and, for a row of several seeds, the range of their own
    UF1s; top row first, and each published number of the benchmark as a diamond on its own line."""
    matplotlib.use("Agg")

    lines = [
        (f"#{r.rank} {r.entry['model']}", r.scores["uf1"], r.ci.get("uf1"), [s["uf1"] for _, _, s in r.seeds], False)
        for r in table.rows
    ]
    lines += [
        (f"{p['method']} (published)", p["uf1"], None, [], True) for p in table.published if p.get("uf1") is not None
    ]
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(lines) + 1.0), dpi=100)
    for y, (_, uf1, ci, by_seed, published) in enumerate(lines):
        if ci:
            ax.plot(ci, [y, y], color="tab:blue", linewidth=1.2)
        if by_seed:  # the seeds' own UF1s: their range as a thick bar
            ax.plot([min(by_seed), max(by_seed)], [y, y], color="tab:green", linewidth=5, alpha=0.6)
        ax.plot([uf1], [y], marker="D" if published else "o", color="tab:orange" if published else "tab:blue")
    ax.set_yticks(range(len(lines)), [label for label, *_ in lines], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("UF1 (pooled; line: 95% subject-bootstrap interval; bar: range over seeds)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", linewidth=0.3)
    ax.set_title(title(table), fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


def write(tables: list[Table], folder: Path, top: int, relative_to: Path) -> dict:
    """Into `folder`: a forest plot of each real-data table, and the confusion plots of its first `top` rows
    (stand-ins' numbers say nothing about the models); plots an earlier page left there and this one does not
    show are removed. Returns {(table key, rank): path relative to `relative_to`}, rank "forest" for the
    table's forest plot."""
    written: dict = {}
    for table in tables:
        if table.synthetic or not top:
            continue
        path = Path(folder) / forest_name(table)
        forest_png(table, path)
        written[(table.key, "forest")] = path.relative_to(relative_to).as_posix()
        for row in table.rows[:top]:
            path = Path(folder) / plot_name(table, row)
            confusion_png(table, row, path)
            written[(table.key, row.rank)] = path.relative_to(relative_to).as_posix()
    shown = {Path(p).name for p in written.values()}
    for pattern in ("confusion-*.png", "forest-*.png"):
        for stale in Path(folder).glob(pattern) if Path(folder).is_dir() else []:
            if stale.name not in shown:
                stale.unlink()
    return written
