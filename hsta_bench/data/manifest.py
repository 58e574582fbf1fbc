"""One manifest schema for every dataset, and the problems found while building one.

A manifest is a polars DataFrame with one row per sample and exactly the columns of `schema()`, in
that order, whatever the dataset. Adapters append `Sample` records and `Problem`s to a `ManifestBuilder`;
problems are never dropped: each names its file (and sheet row) and is either an error (the sample is
unusable), a repair (a documented rule was applied, counted) or a warning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from hsta_bench.data import protocols

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

ERROR, REPAIRED, WARNING = "error", "repaired", "warning"


def label_column(protocol: str) -> str:
    return "label_" + protocol.replace("-", "_")


def schema() -> dict[str, PolarsDataType]:
    """Column -> dtype. Label columns come from the protocol registry, so every manifest has all of them."""
    columns: dict[str, PolarsDataType] = {
        "dataset": pl.String,  # the benchmark this manifest was built for (e.g. megc2019-composite)
        "source": pl.String,  # the dataset the sample comes from (casme2, samm, smic, casme3)
        "subject": pl.String,  # normalised: sub01, 006, s01, spNO.1
        "clip": pl.String,  # normalised clip id, unique within the subject
        "sample_id": pl.String,  # source/subject/clip: unique across every dataset
        "frame_dir": pl.String,  # folder of the frames (null for precomputed-flow datasets)
        "frame_files": pl.List(pl.String),  # readable frame files in frame_dir, in frame order
        "frame_numbers": pl.List(pl.Int64),  # their frame numbers (as in the file names)
        "onset": pl.Int64,
        "apex": pl.Int64,
        "offset": pl.Int64,
        "apex_source": pl.String,  # sheet | table (SMIC apex_table) | middle (rule or repair) | nearest (repair)
        "face_crop": pl.Boolean,  # the frames (or apex image) are already face crops
        "flow_path": pl.String,  # precomputed onset->apex flow image (megc2019-flow)
        "apex_image": pl.String,  # precomputed apex face crop (megc2019-flow)
        "emotion": pl.String,  # exactly as written in the sheet or folder
    }
    for name in protocols.names():
        columns[label_column(name)] = pl.String  # null: not in this protocol (dropped)
    columns.update(
        {
            "fps": pl.Int64,
            "source_file": pl.String,  # the sheet, CSV or folder the sample was read from
            "source_row": pl.Int64,  # 1-based row as a spreadsheet shows it (null for folder-labelled)
            "synthetic": pl.Boolean,  # from a synthetic stand-in
            "usable": pl.Boolean,  # false when an error problem names this sample
        }
    )
    return columns


@dataclass
class Sample:
    source: str
    subject: str
    clip: str
    emotion: str | None
    source_file: str
    source_row: int | None = None
    frame_dir: str | None = None
    frame_files: list[str] = field(default_factory=list)
    frame_numbers: list[int] = field(default_factory=list)
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    apex_source: str | None = "sheet"  # None: no apex frame read (precomputed flow, megc2019-flow)
    face_crop: bool = False
    flow_path: str | None = None
    apex_image: str | None = None
    fps: int | None = None
    usable: bool = True

    @property
    def sample_id(self) -> str:
        return f"{self.source}/{self.subject}/{self.clip}"


@dataclass(frozen=True)
class Problem:
    severity: str  # error | repaired | warning
    kind: str  # short, stable key: missing-frame, apex-outside, apex-unknown, unknown-emotion, ...
    where: str  # file, with ':row N' for a sheet row
    message: str
    sample_id: str | None = None

    def line(self) -> str:
        who = f"{self.sample_id}: " if self.sample_id else ""
        return f"{self.severity}: {self.where}: {who}{self.message}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def where(path: Path | str, row: int | None = None) -> str:
    return f"{path}:row {row}" if row is not None else str(path)


@dataclass
class Manifest:
    """A dataset as read: the sample table plus every problem found on the way."""

    name: str
    root: str
    synthetic: bool
    frame: pl.DataFrame
    problems: list[Problem]

    @property
    def usable(self) -> pl.DataFrame:
        return self.frame.filter(pl.col("usable"))


class ManifestBuilder:
    """Collects samples and problems for one dataset, then freezes them into a `Manifest`."""

    def __init__(self, name: str, root: Path | str, synthetic: bool):
        self.name, self.root, self.synthetic = name, str(root), synthetic
        self.samples: list[Sample] = []
        self.problems: list[Problem] = []
        self._seen: dict[str, str] = {}

    def problem(self, severity: str, kind: str, at: str, message: str, sample: Sample | None = None) -> None:
        self.problems.append(Problem(severity, kind, at, message, sample.sample_id if sample else None))
        if sample is not None and severity == ERROR:
            sample.usable = False

    def add(self, sample: Sample) -> None:
        """Add a sample; a second sample with the same id is an error on the second one."""
        at = where(sample.source_file, sample.source_row)
        if sample.sample_id in self._seen:
            self.problem(ERROR, "duplicate", at, f"same sample as {self._seen[sample.sample_id]}", sample)
        else:
            self._seen[sample.sample_id] = at
        self.samples.append(sample)

    def build(self) -> Manifest:
        return Manifest(
            self.name, self.root, self.synthetic, to_frame(self.name, self.samples, self.synthetic), self.problems
        )


def to_frame(dataset: str, samples: list[Sample], synthetic: bool) -> pl.DataFrame:
    rows = []
    for s in samples:
        row = {
            "dataset": dataset,
            "source": s.source,
            "subject": s.subject,
            "clip": s.clip,
            "sample_id": s.sample_id,
            "frame_dir": s.frame_dir,
            "frame_files": s.frame_files,
            "frame_numbers": s.frame_numbers,
            "onset": s.onset,
            "apex": s.apex,
            "offset": s.offset,
            "apex_source": s.apex_source,
            "face_crop": s.face_crop or synthetic,  # stand-in faces fill their frames
            "flow_path": s.flow_path,
            "apex_image": s.apex_image,
            "emotion": s.emotion,
            "fps": s.fps,
            "source_file": s.source_file,
            "source_row": s.source_row,
            "synthetic": synthetic,
            "usable": s.usable,
        }
        for name in protocols.names():
            row[label_column(name)] = protocols.get(name).label(dataset, s.emotion, s.sample_id)
        rows.append(row)
    cols = schema()
    frame = pl.DataFrame(rows, schema=cols) if rows else pl.DataFrame(schema=cols)
    return frame.select(list(cols))
