"""Synthetic stand-ins: each dataset written in its official layout, so the real adapters read it.

A stand-in lives in `<home>/synthetic/<name>-<size>-<key>/`, where the key hashes the generator
settings (`datasets.<name>.synthetic`), the size and the generator's code (this package and the
dataset's adapter): changing either makes a new one, and an existing one is never rewritten. Each tree carries a
SYNTHETIC.json marker, so anything read
from it, even through --data-root, is marked synthetic. Trees are written to a temporary folder and
renamed into place, so a stand-in is never half-written.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import xlsxwriter

from hsta_bench import config as config_mod
from hsta_bench.data import protocols
from hsta_bench.data.registry import get_source, settings_for
from hsta_bench.data.synth.plan import Event, Renderer, SynthSettings, Video, plan
from hsta_bench.errors import UserError
from hsta_bench.paths import synthetic_dir

MARKER = "SYNTHETIC.json"
GENERATOR_VERSION = 1
SIZES = ("small", "full")

__all__ = ["Event", "Renderer", "SynthSettings", "Video", "is_synthetic", "standin", "write_standin", "MARKER"]


def is_synthetic(root: Path) -> bool:
    return (Path(root) / MARKER).is_file()


def synth_settings(name: str, cfg: dict) -> SynthSettings:
    return config_mod.typed(SynthSettings, cfg["datasets"][name].get("synthetic"), f"datasets.{name}.synthetic")


def _code_digest(name: str) -> str:
    adapter_file = sys.modules[type(get_source(name)).__module__].__file__
    assert adapter_file is not None  # adapters are modules loaded from .py files
    files = sorted(Path(__file__).parent.glob("*.py")) + [Path(adapter_file)]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def _key(name: str, cfg: dict, size: str) -> str:
    spec = {
        "name": name,
        "size": size,
        "version": GENERATOR_VERSION,
        "code": _code_digest(name),
        "settings": cfg["datasets"][name].get("synthetic"),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]


def standin_path(name: str, cfg: dict, size: str = "small") -> Path:
    return synthetic_dir() / f"{name}-{size}-{_key(name, cfg, size)}"


def standin(name: str, cfg: dict, size: str = "small", announce=None) -> Path:
    """The stand-in of `name`, written first if it is not there yet."""
    path = standin_path(name, cfg, size)
    if not is_synthetic(path):
        if announce:
            announce(f"writing the synthetic stand-in of {name} to {path}")
        write_standin(name, cfg, path, size)
    return path


def write_standin(name: str, cfg: dict, dest: Path, size: str = "small", force: bool = False) -> Path:
    """Write the stand-in of `name` at `dest` (atomically: a temporary folder renamed into place)."""
    if size not in SIZES:
        raise UserError(f"--size {size}: expected one of {', '.join(SIZES)}")
    source = get_source(name)
    if source.parts:
        raise UserError(f"{name} is built from {', '.join(source.parts)}: write their stand-ins instead")
    settings = synth_settings(name, cfg)
    if size not in settings.sizes:
        raise UserError(f"datasets.{name}.synthetic.sizes: no size '{size}'")
    if dest.exists():
        if not force and is_synthetic(dest):
            return dest
        if not force:
            raise UserError(f"{dest} exists and is not a synthetic stand-in: not overwriting it")
    composite = set(protocols.get("megc2019-composite").map.get(name, {}))
    videos = plan(settings, size, composite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        source.write_synthetic(tmp, settings_for(name, cfg), SynthTree(settings, videos))
        marker = {
            "dataset": name,
            "size": size,
            "generator_version": GENERATOR_VERSION,
            "seed": settings.seed,
            "samples": sum(len(v.events) for v in videos),
            "subjects": len({v.subject for v in videos}),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.rename(dest, old)
            shutil.rmtree(old)
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


class SynthTree:
    """What a dataset's writer gets: the plan, a renderer, and helpers to write images and sheets."""

    def __init__(self, settings: SynthSettings, videos: list[Video]):
        self.settings = settings
        self.videos = videos
        self.renderer = Renderer(settings)

    @property
    def layout(self) -> dict:
        return self.settings.layout

    def name_clips(self, make) -> None:
        """Give every unnamed event a clip name `make(event, k)` (k = 1, 2, ... per subject), unique per subject."""
        used = {(e.subject, e.clip) for v in self.videos for e in v.events if e.clip}
        counters: dict[str, int] = {}
        for video in self.videos:
            for event in video.events:
                while event.clip is None:
                    counters[event.subject] = counters.get(event.subject, 0) + 1
                    name = make(event, counters[event.subject])
                    if (event.subject, name) not in used:
                        event.clip = name
                        used.add((event.subject, name))

    def write_frames(self, video: Video, folder: Path, name: str) -> None:
        """Write every frame of `video` into `folder`, named `name.format(n=frame_number)`."""
        folder.mkdir(parents=True, exist_ok=True)
        for number, image in self.renderer.frames(video):
            path = folder / name.format(n=number)
            if not cv2.imwrite(str(path), image):
                raise OSError(f"could not write {path}")

    @staticmethod
    def write_sheet(path: Path, sheet_name: str, rows: list[list]) -> None:
        """Write `rows` (the first rows may be notes and the header) to an .xlsx sheet."""
        path.parent.mkdir(parents=True, exist_ok=True)
        workbook = xlsxwriter.Workbook(str(path))
        workbook.set_properties({"created": datetime.datetime(2000, 1, 1)})  # byte-identical rewrites
        sheet = workbook.add_worksheet(sheet_name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, str):  # text stays text: CASME II's subject '01' keeps its zero
                    sheet.write_string(r, c, value)
                else:
                    sheet.write_number(r, c, value)
        workbook.close()
