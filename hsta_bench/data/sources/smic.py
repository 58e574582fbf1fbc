"""SMIC-HS (100 fps, 16 subjects with micro-expressions): labelled by folders, no sheet, no apex.

Layout: `HS/s1/micro/negative/s1_ne_01/reg_image012345.bmp` (`non_micro/` is not used). Onset and
offset are the clip's first and last frames and the apex its middle frame (common practice). Subjects
and clips are normalised to the MEGC2019 spelling: `s1` -> `s01`, `s1_ne_01` -> `s01_ne_01`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from hsta_bench.config import Bool, Int
from hsta_bench.data.clips import settle_clip
from hsta_bench.data.frames import list_frames
from hsta_bench.data.manifest import ERROR, Sample
from hsta_bench.data.protocols import fold_emotion
from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sources._common import find_dir, holds_dirs_like, numbered_id, require

_SUBJECT_DIR = re.compile(r"^s\d+$", re.IGNORECASE)
_CLIP = re.compile(r"^s0*(\d+)_(.+)$", re.IGNORECASE)
ABBREVIATIONS = {"negative": "ne", "positive": "po", "surprise": "sur"}


@dataclass
class SmicSettings:
    fps: Annotated[Int, Field(gt=0)]
    hs_dirs: tuple[str, ...]  # folders that may hold the subject folders s1/ ... ('.' = the root)
    micro_dir: str
    emotions: tuple[str, ...]  # the label folders under micro/
    cropped: Bool  # the frames are face crops already


def subject_id(text: str | None) -> str:
    return numbered_id(text, "s", 2)


def clip_id(folder_name: str) -> str:
    match = _CLIP.match(folder_name)
    return f"s{int(match.group(1)):02d}_{match.group(2)}" if match else folder_name


@register
class Smic(DatasetSource):
    name = "smic"
    title = "SMIC-HS"
    inputs = "frames"
    protocols = ("megc2019-composite",)
    Settings = SmicSettings

    def read(self, root: Path, s: SmicSettings, builder) -> None:
        hs = require(
            find_dir(root, s.hs_dirs, holds_dirs_like(_SUBJECT_DIR.pattern)),
            root,
            "SMIC-HS subject folders (HS/s1/ ...)",
            "datasets.smic.hs_dirs",
        )
        known = {fold_emotion(e) for e in s.emotions}
        subjects = sorted(
            (p for p in hs.iterdir() if p.is_dir() and _SUBJECT_DIR.match(p.name)), key=lambda p: int(p.name[1:])
        )
        found_micro = False
        for subject_dir in subjects:
            micro = subject_dir / s.micro_dir
            if not micro.is_dir():
                continue  # subjects without micro-expressions have no micro/ folder
            found_micro = True
            for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
                for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                    sample = Sample(
                        source=builder.name,
                        subject=subject_id(subject_dir.name),
                        clip=clip_id(clip_dir.name),
                        emotion=label_dir.name,
                        source_file=str(clip_dir),
                        frame_dir=str(clip_dir),
                        fps=s.fps,
                        apex_source="middle",
                        face_crop=s.cropped,
                    )
                    builder.add(sample)
                    if fold_emotion(label_dir.name) not in known:
                        builder.problem(
                            ERROR,
                            "unknown-emotion",
                            str(label_dir),
                            f"unknown label folder {label_dir.name!r} (known: {', '.join(s.emotions)})",
                            sample,
                        )
                    frames = list_frames(clip_dir)
                    if frames:
                        sample.onset, sample.offset = min(frames), max(frames)
                        sample.apex = (sample.onset + sample.offset) // 2
                    settle_clip(builder, sample)
        require(
            hs if found_micro else None,
            root,
            f"SMIC-HS '{s.micro_dir}' folders under the subject folders",
            "datasets.smic.micro_dir",
        )

    def write_synthetic(self, root: Path, s: SmicSettings, tree) -> None:
        def name(event, k):
            return f"s{int(event.subject[1:])}_{ABBREVIATIONS.get(event.emotion, event.emotion[:2])}_{k:02d}"

        tree.name_clips(name)
        for video in tree.videos:
            event = video.events[0]
            folder = root / "HS" / f"s{int(event.subject[1:])}" / s.micro_dir / event.emotion / event.clip
            tree.write_frames(video, folder, "reg_image{n:06d}.bmp")
        # a subject folder with only non-micro clips, as in the distribution: not read
        tree.write_frames(tree.videos[0], root / "HS" / "s7" / "non_micro" / "s7_no_01", "reg_image{n:06d}.bmp")
