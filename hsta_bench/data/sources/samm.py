"""SAMM (200 fps, grayscale, 29 subjects): `SAMM/006/006_1_2/006_05562.jpg`, labels in the FACS sheet.

The sheet (`SAMM_Micro_FACS_Codes_v2.xlsx`, sheet `MICRO_ONLY`) starts with a block of notes; the header
is found, not assumed, and its cells may hold line breaks (`Onset\\nFrame`). Known annotation errors
(apex outside onset..offset, e.g. 028_4_1 and 032_3_1) are repaired by the middle frame and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsta_bench.config import Bool
from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sheets import find_file
from hsta_bench.data.sources._common import (
    CodedSheetSettings,
    find_dir,
    holds_dirs_like,
    numbered_id,
    read_coded_clips,
    require,
)

SUBJECT_DIR = r"^\d{3}$"

NOTES = [
    "SAMM: Spontaneous Actions and Micro-Movements (synthetic stand-in written by hsta-bench)",
    "Micro-movements coded with FACS; onset, apex and offset are frame numbers.",
    "Inducement code: the stimulus that induced the movement.",
    "Estimated emotion: as judged by the coders from the action units and the stimulus.",
]


# the distributed sheet's header row (MICRO_ONLY), line breaks in its cells as distributed
SHEET_HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset\nFrame",
    "Apex\nFrame",
    "Offset\nFrame",
    "Duration",
    "Micro",
    "Action\nUnits",
    "Estimated\nEmotion",
    "Objective\nClasses",
    "Notes",
)


@dataclass
class SammSettings(CodedSheetSettings):
    frame_dirs: tuple[str, ...]  # folders that may hold the subject folders ('.' = the root)
    cropped: Bool  # the frames are face crops already


def subject_id(text: str | None) -> str:
    return numbered_id(text, "", 3)


@register
class Samm(DatasetSource):
    name = "samm"
    title = "SAMM"
    inputs = "frames"
    protocols = ("samm-5", "megc2019-composite")
    Settings = SammSettings

    def read(self, root: Path, s: SammSettings, builder) -> None:
        sheet = find_file(root, s.sheets, "SAMM FACS sheet", "datasets.samm.sheets")
        frames = require(
            find_dir(root, s.frame_dirs, holds_dirs_like(SUBJECT_DIR)),
            root,
            "SAMM subject folders (006/ ...)",
            "datasets.samm.frame_dirs",
        )
        read_coded_clips(
            builder,
            sheet,
            s,
            subject_id=subject_id,
            clip_id=lambda cells, onset: cells["clip"],
            frame_dir=lambda subject, cells: frames / subject / cells["clip"],
            cropped=s.cropped,
        )

    def write_synthetic(self, root: Path, s: SammSettings, tree) -> None:
        tree.name_clips(lambda event, k: f"{event.subject}_{1 + k % 7}_{k}")
        rows: list[list] = [[note] for note in NOTES] + [[], list(SHEET_HEADER)]
        for video in tree.videos:
            event = video.events[0]
            tree.write_frames(video, root / "SAMM" / event.subject / event.clip, event.subject + "_{n:05d}.jpg")
            apex = event.offset + 3 if event.apex_cell == "outside" else event.apex
            # subject as a number, as in the distributed sheet: 6, not '006'
            rows.append(
                [
                    int(event.subject),
                    event.clip,
                    1,
                    event.onset,
                    apex,
                    event.offset,
                    event.offset - event.onset + 1,
                    "Micro - 1/2",
                    "R12",
                    event.emotion,
                    1,
                    None,
                ]
            )
        tree.write_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY", rows)
