"""The content-addressed cache of prepared inputs: one folder per (dataset, input kind, key).

    <home>/cache/<dataset>/<kind>-<key>/
        data.npy        n x shape uint8 (memory-mapped by readers: np.load(path, mmap_mode="r"))
        index.parquet   sample_id -> row of data.npy (excluded samples have no row)
        meta.json       settings, key, code digest, shape, excluded samples with reasons, timings

The key hashes what the arrays depend on: the settings of that kind, the code of preprocessing, and
the samples (ids, onset/apex/offset) with the size and modification time of every file they read.
A folder is built under a temporary name and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hsta_bench import __version__
from hsta_bench.paths import home

CODE_FILES = (
    "preprocess/flow.py",
    "preprocess/sampling.py",
    "preprocess/worker.py",
    "preprocess/crop.py",
    "preprocess/mtcnn.py",
    "preprocess/kinds.py",
    "data/flowimage.py",
)


def code_digest() -> str:
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(__version__.encode())
    for name in CODE_FILES:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def fingerprint(sample: dict, files: list[str]) -> list:
    """What a sample's arrays depend on besides settings: its annotation and its files' size and mtime."""
    return [
        sample["sample_id"],
        sample["onset"],
        sample["apex"],
        sample["offset"],
        sample["face_crop"],
        [(f, *_stat(f)) for f in files],
    ]


def key(dataset: str, kind: str, depends_on: dict, code: str, fingerprints: list) -> str:
    blob = json.dumps([dataset, kind, depends_on, code, fingerprints], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root() -> Path:
    return home() / "cache"


@dataclass
class Entry:
    dataset: str
    kind: str
    key: str

    @property
    def path(self) -> Path:
        return cache_root() / self.dataset / f"{self.kind}-{self.key}"

    @property
    def complete(self) -> bool:
        return (self.path / "meta.json").is_file()

    def meta(self) -> dict:
        return json.loads((self.path / "meta.json").read_text())

    def staging(self) -> Path:
        tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def publish(self, staging: Path) -> None:
        """Move a finished staging folder into place (a concurrent identical one may have won: fine)."""
        try:
            os.rename(staging, self.path)
        except OSError:
            if not self.complete:
                raise
            shutil.rmtree(staging, ignore_errors=True)
