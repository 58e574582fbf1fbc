"""Nine real clips (../shared/data/real-clips: 3 each of CASME II, SAMM and SMIC-HS) laid out as each dataset
is really distributed, so that the real adapters, `datasets prepare` and the models can be tried on real faces.

The frames are third-party licensed faces: they are never copied into the repository. `lay_out` makes, in a
folder of the caller's (a pytest tmp dir), each dataset's distributed tree of its frames under their distributed
names, plus the coding sheet its adapter reads, written in the format the adapter's `write_synthetic` writes
(DATASETS.md). CASME II and SAMM frames are symlinks to the shared files. The shared SMIC frames are the
distributed reg_images padded to 128x128 with black bars left and right, which the distributed ones do not have:
they are written as .bmp files with the bars cut off (104 or 105 x 128), and next to them an apex table (SMIC-HS
has no apex annotation) from clips.csv's apex, which `smic_sets` points `datasets.smic.apex_table` at.
`SHARED_CLIPS` and `needs_real_clips` mirror helpers.py's `SHARED_FLOW` and `realdata`: without ../shared the
tests that use them skip.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

import pytest
import xlsxwriter

from hsta_bench.data.sources.samm import SHEET_HEADER

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = (REPO / ".." / "shared" / "data" / "real-clips").resolve()
CLIPS_CSV = SHARED_CLIPS / "clips.csv"

needs_real_clips = pytest.mark.skipif(
    not CLIPS_CSV.is_file(),
    reason=f"the real clips (../shared/data/real-clips/clips.csv) are not at {SHARED_CLIPS}",
)

DATASETS = ("casme2", "samm", "smic")
SMIC_APEX_TABLE = "apex.csv"  # in the laid-out SMIC root: datasets.smic.apex_table, relative to the data root
BAR_DARK = 40  # a column of a black bar: its brightest pixel's R+G+B is below this (measured: 0 in the bars)

# SAMM's clips.csv emotion is 'see SAMM sheet' (the sheet is not in ../shared): the emotion written for each is
# one that the megc2019-composite protocol (configs/protocols.yaml, map.samm) maps to the clip's composite_label.
# negative -> Anger: SAMM's largest negative class (57 of 159), and any of anger/contempt/disgust/fear/sadness
# would map to negative alike; positive -> Happiness and surprise -> Surprise are the only SAMM emotions mapping
# to those classes. Spelled with a capital, as the SAMM sheet writes them (configs/datasets/samm.yaml emotions).
SAMM_EMOTION = {"negative": "Anger", "positive": "Happiness", "surprise": "Surprise"}

SAMM_NOTES = [
    "SAMM: Spontaneous Actions and Micro-Movements (rows for the real clips, written by tests/realclips.py)",
    "Micro-movements coded with FACS; onset, apex and offset are frame numbers.",
    "Inducement code: the stimulus that induced the movement.",
    "Estimated emotion: as judged by the coders from the action units and the stimulus.",
]


def read_clips(datasets=DATASETS) -> list[dict]:
    """clips.csv's rows of `datasets`, frame numbers as ints, plus `folder` (the shared clip folder) and
    `frames` (frame number -> shared file)."""
    with open(CLIPS_CSV, newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row["dataset"] in datasets]
    for row in rows:
        for key in ("onset", "apex", "offset", "first_frame", "last_frame"):
            row[key] = int(row[key])
        row["folder"] = SHARED_CLIPS / row["dataset"] / row["subject"] / row["clip"]
        row["frames"] = {
            n: row["folder"] / row["frame_name"].format(n) for n in range(row["first_frame"], row["last_frame"] + 1)
        }
        missing = [str(p) for p in row["frames"].values() if not p.is_file()]
        assert not missing, f"clips.csv promises frames that are not there: {missing[:3]}"
    return rows


def _link_frames(clip: dict, folder: Path, name: str) -> None:
    """Symlinks in `folder` to every shared frame of `clip`, named `name.format(n=frame_number)`."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, target in clip["frames"].items():
        (folder / name.format(n=number)).symlink_to(target)


def _write_sheet(path: Path, sheet_name: str, rows: list[list]) -> None:
    """As SynthTree.write_sheet (hsta_bench/data/synth): text cells stay text, numbers are numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = xlsxwriter.Workbook(str(path))
    workbook.set_properties({"created": datetime.datetime(2000, 1, 1)})
    sheet = workbook.add_worksheet(sheet_name)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                sheet.write_string(r, c, value)
            else:
                sheet.write_number(r, c, value)
    workbook.close()


def _casme2(root: Path, clips: list[dict]) -> None:
    """`CASME2_RAW_selected/sub01/EP19_06f/img36.jpg` (raw frames, unpadded absolute numbers) and
    `CASME2-coding-20140508.xlsx` [Sheet1], the subject as text with its leading zero ('01')."""
    rows: list[list] = [
        ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
    ]
    for clip in clips:
        _link_frames(clip, root / "CASME2_RAW_selected" / clip["subject"] / clip["clip"], "img{n}.jpg")
        # Action Units: not in clips.csv and not read by the adapter; left blank
        rows.append(
            [clip["subject"][3:], clip["clip"], clip["onset"], clip["apex"], clip["offset"], None, clip["emotion"]]
        )
    _write_sheet(root / "CASME2-coding-20140508.xlsx", "Sheet1", rows)


def _samm(root: Path, clips: list[dict]) -> None:
    """`SAMM/018/018_3_1/018_01405.jpg` (`<subject>_<frame, 5 digits>.jpg`) and `SAMM_Micro_FACS_Codes_v2.xlsx`
    [MICRO_ONLY]: a block of notes, then the header with line breaks, the subject as a number (18)."""
    rows: list[list] = [[note] for note in SAMM_NOTES] + [[], list(SHEET_HEADER)]
    for clip in clips:
        subject = clip["subject"]
        _link_frames(clip, root / "SAMM" / subject / clip["clip"], subject + "_{n:05d}.jpg")
        rows.append(
            [
                int(subject),
                clip["clip"],
                None,  # inducement code, action units, objective class: not in clips.csv, not read
                clip["onset"],
                clip["apex"],
                clip["offset"],
                clip["offset"] - clip["onset"] + 1,
                "Micro - 1/2",
                None,
                SAMM_EMOTION[clip["composite_label"]],
                None,
                None,
            ]
        )
    _write_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY", rows)


def bar_columns(image, dark: int = BAR_DARK) -> tuple[int, int]:
    """(left, right): how many columns from each edge of `image` (rows x columns x channels) are a black bar,
    i.e. contiguous columns from that edge whose brightest pixel has a channel sum below `dark`."""
    import numpy as np

    black = image.astype(np.int64).sum(axis=2).max(axis=0) < dark
    if black.all():
        raise AssertionError("an all-black frame: no bars to find")
    return int(np.argmin(black)), int(np.argmin(black[::-1]))


def _smic(root: Path, clips: list[dict]) -> None:
    """`HS/s11/micro/negative/s11_ne_02/reg_image514569.bmp`: no sheet, the label is the folder; the subject
    folder is unpadded (`s3`) and so is s03's clip folder (`s3_po_05`, as clips.csv spells it). The frames are
    written with the shared copy's black bars cut off, the same columns from every frame of a clip (found on its
    onset frame), as the distributed frames have none. SMIC-HS has no apex annotation: `SMIC_APEX_TABLE` is
    clips.csv's apex (the third-party table's), subject as clips.csv spells it (`s03`) and clip as the folder."""
    import cv2

    table = ["subject,clip,apex"]
    for clip in clips:
        subject_dir = f"s{int(clip['subject'][1:])}"
        folder = root / "HS" / subject_dir / "micro" / clip["emotion"] / clip["clip"]
        folder.mkdir(parents=True, exist_ok=True)
        onset = cv2.imread(str(clip["frames"][clip["onset"]]), cv2.IMREAD_COLOR)
        left, right = bar_columns(onset)
        for number, source in clip["frames"].items():
            image = cv2.imread(str(source), cv2.IMREAD_COLOR)
            assert image is not None and image.shape == onset.shape, source
            assert cv2.imwrite(str(folder / f"reg_image{number}.bmp"), image[:, left : image.shape[1] - right])
        table.append(f"{clip['subject']},{clip['clip']},{clip['apex']}")
    (root / SMIC_APEX_TABLE).write_text("\n".join(table) + "\n")


WRITERS = {"casme2": _casme2, "samm": _samm, "smic": _smic}


def lay_out(dest: Path, datasets=DATASETS) -> dict[str, Path]:
    """Each of `datasets` laid out under `dest` as distributed (its frames and its sheet; SMIC's apex table):
    dataset -> its data root, for `--data-root NAME=PATH` (or `config.load(data_roots=...)`); `smic_sets` gives
    the `--set` that reads SMIC's apex table."""
    roots = {}
    for name in datasets:
        root = Path(dest) / name
        root.mkdir(parents=True, exist_ok=True)
        WRITERS[name](root, read_clips((name,)))
        roots[name] = root
    return roots


def data_roots(roots: dict[str, Path]) -> list[str]:
    """`NAME=PATH` items for config.load(data_roots=...)."""
    return [f"{name}={path}" for name, path in roots.items()]


def smic_sets(roots: dict[str, Path]) -> list[str]:
    """`--set` items that make the SMIC adapter read the laid-out apex table (none when SMIC is not laid out)."""
    return [f"datasets.smic.apex_table={SMIC_APEX_TABLE}"] if "smic" in roots else []
