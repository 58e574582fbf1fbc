"""Published reference rows (leaderboard/published.csv): what papers report, with what is known to be wrong
with it, shown beside our measured rows and never ranked with them.

    method, dataset, protocol, scheme, uf1, uar, source, caveat

`dataset` and `protocol` are this suite's names (the table a row belongs beside); `uar` may be empty where
a paper gives none; `caveat` says, e.g., "best epoch chosen on each test subject".
"""

from __future__ import annotations

from pathlib import Path

from hsta_bench.errors import UserError
from hsta_bench.leaderboard.store import read_csv
from hsta_bench.paths import configs_dir

COLUMNS: dict[str, type] = {
    "method": str,
    "dataset": str,
    "protocol": str,
    "scheme": str,
    "uf1": str,
    "uar": str,
    "source": str,
    "caveat": str,
}


def default_path(settings) -> Path | None:
    """The repository's leaderboard/published.csv (configs/leaderboard.yaml `references`), if it is there."""
    path = configs_dir().parent / settings.references
    return path if path.is_file() else None


def read(path: Path, tree: dict) -> list[dict]:
    """The rows of `path`, each checked against the loaded config `tree` (its datasets and protocols)."""
    rows = read_csv(path, COLUMNS)
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        if row["dataset"] not in tree["datasets"]:
            raise UserError(
                f"{where}: unknown dataset {row['dataset']!r} (known: {', '.join(sorted(tree['datasets']))})"
            )
        if row["protocol"] not in tree["protocols"]:
            raise UserError(f"{where}: unknown protocol {row['protocol']!r}")
        if row["scheme"] != "loso" and not (row["scheme"].startswith("kfold-") and row["scheme"][6:].isdigit()):
            raise UserError(f"{where}: scheme must be loso or kfold-K, got {row['scheme']!r}")
        for stat in ("uf1", "uar"):
            text = row[stat].strip()
            if not text and stat == "uar":
                row[stat] = None
                continue
            try:
                row[stat] = float(text)
            except ValueError:
                raise UserError(f"{where}, {stat}: expected a number between 0 and 1, got {text!r}") from None
            if not 0.0 <= row[stat] <= 1.0:
                raise UserError(f"{where}, {stat}: expected a number between 0 and 1, got {text!r}")
        if not row["source"].strip():
            raise UserError(f"{where}: no source (say where the number was published)")
    return rows
