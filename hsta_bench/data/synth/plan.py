"""What a synthetic stand-in contains: subjects, samples per class, and each sample's time course.

The plan is pure data, fixed by the seed; each adapter's `write_synthetic` turns it into files in its
dataset's official layout. Class counts follow the real dataset's imbalance, scaled to the size asked
for (`small` by default; `full` has the real numbers of samples and subjects).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from hsta_bench.config import Bool, Float, Int
from hsta_bench.data.protocols import fold_emotion
from hsta_bench.data.synth.faces import Face, displacement, envelope, make_face, motion_for, render


@dataclass
class SynthSettings:
    """configs/datasets/NAME.yaml `synthetic`. The defaults below are for keys a dataset's file leaves out
    because they do not apply to it or it has the usual value (no quirks planted, one event per video, ...);
    they are not in the files, so they live here, once."""

    seed: Int
    image_size: Annotated[Int, Field(ge=8)]  # frames are image_size x image_size
    clip_frames: tuple[Annotated[Int, Field(ge=1)], ...]  # min, max frames from onset to offset
    amplitude: tuple[Float, ...]  # min, max displacement at the apex, in pixels
    classes: dict[str, Annotated[Int, Field(ge=0)]]  # emotion as written -> count in the real dataset
    sizes: dict[str, dict]  # name -> subjects (ids), samples (total), composite_free_subjects (optional)
    fixed: tuple[dict, ...] = ()  # samples planted by name: subject, clip, emotion, apex_cell, offset_cell (quirks)
    events_per_video: Annotated[Int, Field(ge=1)] = 1  # CAS(ME)^3 codes several micro-expressions in one long clip
    first_frame: tuple[Int, ...] = (1, 200)  # range of the first frame number of a video
    lead_frames: tuple[Int, ...] = (0, 3)  # frames before the onset / after the offset in a folder
    gray: Bool = False
    layout: dict[str, Any] = field(default_factory=dict)  # options of the dataset's own writer


@dataclass
class Event:
    subject: str
    emotion: str  # as it will be written
    onset: int
    apex: int
    offset: int
    amplitude: float
    motion: dict[str, tuple[float, float]]
    clip: str | None = None  # set for planted samples; otherwise the writer names it
    apex_cell: str | None = None  # quirk: what the sheet's apex cell says instead of the apex
    offset_cell: str | None = None  # quirk: what the sheet's offset cell says instead of the offset (zero, before)


@dataclass
class Video:
    subject: str
    index: int  # per subject
    frames: list[int]
    events: list[Event]


def scale_counts(classes: dict[str, int], total: int) -> dict[str, int]:
    """Counts proportional to `classes` summing to `total` (largest remainder), at least 1 each."""
    real = sum(classes.values())
    exact = {k: v * total / real for k, v in classes.items()}
    counts = {k: max(1, int(x)) for k, x in exact.items()}
    by_remainder = sorted(classes, key=lambda k: exact[k] - int(exact[k]), reverse=True)
    i = 0
    while sum(counts.values()) < total:
        counts[by_remainder[i % len(by_remainder)]] += 1
        i += 1
    return counts


def subject_rng(seed: int, subject: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(subject.encode())])


def plan(settings: SynthSettings, size: str, composite_classes: set[str | None]) -> list[Video]:
    if size not in settings.sizes:
        raise KeyError(size)
    spec = settings.sizes[size]
    subjects = [str(s) for s in spec["subjects"]]
    free = {str(s) for s in spec.get("composite_free_subjects", ())}
    counts = scale_counts(settings.classes, int(spec["samples"]))
    rng = np.random.default_rng(settings.seed)

    chosen: list[tuple[str, str, dict | None]] = []
    for planted in settings.fixed:
        if str(planted["subject"]) in subjects and counts.get(planted["emotion"], 0) > 0:
            counts[planted["emotion"]] -= 1
            chosen.append((str(planted["subject"]), planted["emotion"], planted))
    cursor = 0
    for emotion, n in counts.items():
        in_composite = fold_emotion(emotion) in composite_classes
        eligible = [s for s in subjects if not (in_composite and s in free)]
        for _ in range(n):
            chosen.append((eligible[cursor % len(eligible)], emotion, None))
            cursor += 1

    videos = []
    for subject in subjects:
        mine = [c for c in chosen if c[0] == subject]
        order = rng.permutation(len(mine))
        mine = [mine[i] for i in order]
        per = settings.events_per_video
        for index, start in enumerate(range(0, len(mine), per)):
            videos.append(_video(settings, rng, subject, index, mine[start : start + per]))
    return videos


def _video(settings: SynthSettings, rng, subject: str, index: int, items) -> Video:
    lo, hi = settings.clip_frames
    first = int(rng.integers(settings.first_frame[0], settings.first_frame[1] + 1))
    t = first
    events = []
    for _, emotion, planted in items:
        t += int(rng.integers(settings.lead_frames[0], settings.lead_frames[1] + 1))
        length = int(rng.integers(lo, hi + 1))
        onset, offset = t, t + length - 1
        apex = onset + int(round((length - 1) * rng.uniform(0.3, 0.6)))
        apex_cell = planted.get("apex_cell") if planted else None
        if apex_cell == "onset":  # the apex coded at the onset (common in CAS(ME)^3)
            apex = onset
        events.append(
            Event(
                subject=subject,
                emotion=emotion,
                onset=onset,
                apex=apex,
                offset=offset,
                amplitude=float(rng.uniform(*settings.amplitude)),
                motion=motion_for(emotion, rng),
                clip=planted.get("clip") if planted else None,
                apex_cell=apex_cell,
                offset_cell=planted.get("offset_cell") if planted else None,
            )
        )
        t = offset + 1
    last = t - 1 + int(rng.integers(settings.lead_frames[0], settings.lead_frames[1] + 1))
    return Video(subject, index, list(range(first, last + 1)), events)


class Renderer:
    """Renders the frames of planned videos; one still face per subject, cached."""

    def __init__(self, settings: SynthSettings):
        self.settings = settings
        self._faces: dict[str, Face] = {}

    def face(self, subject: str) -> Face:
        if subject not in self._faces:
            self._faces[subject] = make_face(self.settings.image_size, subject_rng(self.settings.seed, subject))
        return self._faces[subject]

    def field(self, event: Event) -> np.ndarray:
        return displacement(self.face(event.subject), event.motion, event.amplitude)

    def frames(self, video: Video):
        """(frame number, uint8 image) for every frame of `video`, in order."""
        face = self.face(video.subject)
        fields = [self.field(e) for e in video.events]
        rng = np.random.default_rng([self.settings.seed, zlib.crc32(video.subject.encode()), video.index, 7])
        for t in video.frames:
            total = np.zeros_like(fields[0])
            for event, f in zip(video.events, fields):
                w = envelope(t, event.onset, event.apex, event.offset)
                if w:
                    total += w * f
            yield t, render(face, total, 1.0, rng, self.settings.gray)
