"""Fold weights: saved by `run --save-weights`, scored without training by `run --weights DIR`.

One file per fold, named by the fold (the test subject under LOSO: `006.pth`, `sub01.pth`, `s01.pth`), as
STSTNet's release names its 68 published fold weights. A file this suite writes holds the state dict and
what it belongs to (model, dataset, protocol, fold, classes, config key); a file that is a bare state dict
(a release's) is taken as it is. Loading never runs pickled code (`torch.load(weights_only=True)`), and a
missing, unreadable or mismatched file is one line naming it, before any fold is scored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hsta_bench.errors import UserError
from hsta_bench.io import atomic_write

SUFFIXES = (".pth", ".pt")


def folder(root: Path, model: str, dataset: str, protocol: str) -> Path:
    """Where `run --save-weights` puts an evaluation's fold files: beside the run's fragments folder (`root`)."""
    return Path(root).parent / "weights" / model / dataset / protocol


def fold_file(folder: Path, fold: str) -> Path | None:
    """The file of `fold` in `folder` (.pth, else .pt), or None."""
    for suffix in SUFFIXES:
        path = Path(folder) / f"{fold}{suffix}"
        if path.is_file():
            return path
    return None


def check_folder(folder: str | Path, folds: list, where: str = "--weights") -> Path:
    """`folder` holds a file for every fold (one line naming the first few missing otherwise)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{where} {folder}: not a folder")
    missing = [f.name for f in folds if fold_file(folder, f.name) is None]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(
            f"{where} {folder}: no weights for fold(s) {', '.join(missing[:3])}{more} "
            f"(expected a file per fold named by its test subject, e.g. {folds[0].name}.pth)"
        )
    return folder.resolve()


def save(path: Path, state: dict, meta: dict) -> Path:
    """Write one fold's weights (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save({**meta, "state_dict": state}, tmp))
    return path


def read(path: Path, meta: dict) -> dict:
    """The state dict in `path`; `meta` (model, classes) is checked against what a file of ours records."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a safe checkpoint
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not loadable as weights ({first})") from None
    if not isinstance(blob, dict):
        raise UserError(f"{path}: expected a state dict, found {type(blob).__name__}")
    if "state_dict" not in blob:
        return blob  # a bare state dict (a release's)
    for key in ("model", "classes"):
        if key in blob and blob[key] != meta[key]:
            raise UserError(f"{path}: weights of {key} {blob[key]!r}, not {meta[key]!r}")
    return blob["state_dict"]


def check_fits(path: Path, state: dict, model, name: str) -> None:
    """One line naming `path` when `state` does not fit `model` (names and shapes), else nothing."""
    own = model.state_dict()

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = (
        ([f"missing {listed(missing)}"] if missing else [])
        + ([f"unexpected {listed(unexpected)}"] if unexpected else [])
        + ([f"shape {listed(shapes)}"] if shapes else [])
    )
    if problems:
        raise UserError(f"{path}: does not fit {name} ({'; '.join(problems)})")


def check_all(folder: Path, folds: list, model, meta: dict) -> None:
    """Every fold's file in `folder` fits `model` (a built instance): checked before anything is scored."""
    for fold in folds:
        path = fold_file(folder, fold.name)
        assert path is not None  # its callers check the folder first (check_folder: a file for every fold)
        check_fits(path, read(path, meta), model, meta["model"])


def load_into(model, path: Path, meta: dict) -> None:
    """Load `path` into `model` (checked as `check_all` does)."""
    state = read(path, meta)
    check_fits(path, state, model, meta["model"])
    model.load_state_dict(state, strict=True)
