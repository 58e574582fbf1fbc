"""CASME II (200 fps, 26 subjects): frames in `Cropped/` or `CASME2_RAW_selected/`, labels in the coding sheet.

Layout: `<frames>/sub01/EP02_01f/reg_img46.jpg` (cropped) or `.../img46.jpg` (raw); the frame number in a
file name is absolute and matches the sheet. Sheets: `CASME2-coding-20140508.xlsx` (the MEGC2019 basis)
or the 2019 one with two blank columns and a `/` apex (repaired by the middle frame, reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sheets import find_file
from hsta_bench.data.sources._common import CodedSheetSettings, find_dir, numbered_id, read_coded_clips, require
from hsta_bench.errors import UserError


@dataclass
class Casme2Settings(CodedSheetSettings):
    frames: str  # auto (cropped when present) | cropped | raw
    frame_dirs: dict[str, str]  # cropped/raw -> folder name


def subject_id(text: str | None) -> str:
    return numbered_id(text, "sub", 2)


@register
class Casme2(DatasetSource):
    name = "casme2"
    title = "CASME II"
    inputs = "frames"
    protocols = ("casme2-5", "megc2019-composite")
    Settings = Casme2Settings

    def frames_root(self, root: Path, s: Casme2Settings) -> tuple[Path, str]:
        variants = ["cropped", "raw"] if s.frames == "auto" else [s.frames]
        for variant in variants:
            if variant not in s.frame_dirs:
                raise UserError(f"datasets.casme2.frames: '{s.frames}' is not auto or one of {', '.join(s.frame_dirs)}")
            found = find_dir(root, [s.frame_dirs[variant]])
            if found is not None:
                return found, variant
        wanted = " or ".join(s.frame_dirs[v] for v in variants)
        return require(None, root, f"CASME II frame folder ({wanted})", "datasets.casme2.frame_dirs")

    def read(self, root: Path, s: Casme2Settings, builder) -> None:
        sheet = find_file(root, s.sheets, "CASME II coding sheet", "datasets.casme2.sheets")
        frames, variant = self.frames_root(root, s)
        read_coded_clips(
            builder,
            sheet,
            s,
            subject_id=subject_id,
            clip_id=lambda cells, onset: cells["clip"],
            frame_dir=lambda subject, cells: frames / subject / cells["clip"],
            cropped=variant == "cropped",
        )

    def write_synthetic(self, root: Path, s: Casme2Settings, tree) -> None:
        version = str(tree.layout.get("sheet_version", "20140508"))
        cropped = tree.layout.get("frames", "cropped") == "cropped"
        folder = root / s.frame_dirs["cropped" if cropped else "raw"]
        prefix = "reg_img" if cropped else "img"
        header: list[str | None] = [
            "Subject",
            "Filename",
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            "Action Units",
            "Estimated Emotion",
        ]
        if version == "20190701":  # two blank columns and the objective classes
            header = header[:2] + [None] + header[2:5] + [None] + header[5:] + ["Objective Classes"]
        rows = [header]
        tree.name_clips(lambda event, k: f"EP{k:02d}_0{1 + k % 3}f")
        for video in tree.videos:
            event = video.events[0]
            tree.write_frames(video, folder / event.subject / event.clip, prefix + "{n}.jpg")
            apex = "/" if (event.apex_cell == "/" and version == "20190701") else event.apex
            apex = event.offset + 3 if event.apex_cell == "outside" else apex
            cells = [event.subject[3:], event.clip, event.onset, apex, event.offset, "4+7", event.emotion]
            if version == "20190701":
                cells = cells[:2] + [None] + cells[2:5] + [None] + cells[5:] + [1]
            rows.append(cells)
        tree.write_sheet(root / f"CASME2-coding-{version}.xlsx", "Sheet1", rows)
