"""Writing and reading the records every command leaves behind, each file written whole: a temporary file
renamed onto its name (atomic_write), so a reader sees the old file or the new one, never half of one. And
what a record says about where it was made: the git commit and the software environment.

The floor everything else stands on: it imports nothing of hsta_bench but errors.py (profiling, tuning, the
leaderboard and the CLI use it without importing the engine).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from hsta_bench import __version__
from hsta_bench.errors import UserError


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename onto `path`: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(frame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.write_parquet(tmp))


def write_json(data: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8"))


def read_record(folder: Path, name: str, option: str) -> dict:
    """The JSON record (run.json, tune.json) of a folder being resumed with `option`; a missing or damaged
    record is one line naming it."""
    path = Path(folder) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{option}: no {name} at {folder} (give --output where it was written)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read it ({exc})") from None


def git_commit(repo: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() if out.returncode == 0 else None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{commit}+dirty" if commit and dirty else commit
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    # torch here, not at the top: io is the floor the leaderboard and the light commands stand on, and only
    # a run's record asks which torch (and which accelerator) it ran on
    import torch  # noqa: PLC0415

    try:
        polars = version("polars")
    except PackageNotFoundError:  # `hsta-bench profile` runs without it (e.g. on a lent GPU machine)
        polars = None
    return {
        "hsta_bench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "polars": polars,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
