"""Checks and documented repairs shared by every video dataset: the onset/apex/offset annotation
against the frames actually present.

The rules (each application is reported as a `repaired` problem and counted, never silent):
- unknown apex (`/` or empty): the middle frame of onset..offset;
- apex outside onset..offset (an annotation error): the middle frame of onset..offset;
- unknown offset: the last frame of the clip folder;
- a frame inside onset..offset missing or unreadable: left out, so preprocessing takes the nearest
  readable frame; when it is the onset, apex or offset itself, that moves to the nearest readable frame
  (onset forwards, offset backwards);
- fewer than two readable frames in onset..offset, an unknown onset, offset before onset, or a missing
  clip folder: the sample is unusable (an error).
An apex equal to the onset is legal but gives no onset->apex motion: a warning.
"""

from __future__ import annotations

from pathlib import Path

from hsta_bench.data.frames import image_problem, list_frames, name_for
from hsta_bench.data.manifest import ERROR, REPAIRED, WARNING, ManifestBuilder, Sample, where

MAX_NAMED = 8  # frames named in one problem line before "and N more"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def settle_clip(builder: ManifestBuilder, sample: Sample, apex_text: str | None = None) -> None:
    """Check `sample` against its frame folder, apply the documented repairs, record its frames."""
    at = where(sample.source_file, sample.source_row)
    folder = Path(sample.frame_dir) if sample.frame_dir else None
    if folder is None or not folder.is_dir():
        builder.problem(ERROR, "missing-clip", at, f"clip folder not found: {folder}", sample)
        return
    frames = list_frames(folder)
    if not frames:
        builder.problem(ERROR, "missing-clip", str(folder), "no numbered frames in the clip folder", sample)
        return
    if sample.onset is None:
        builder.problem(ERROR, "onset-unknown", at, "onset frame is unknown", sample)
        return
    if sample.offset is None:
        sample.offset = max(frames)
        builder.problem(
            REPAIRED, "offset-unknown", at, f"offset unknown: last frame of the clip, {sample.offset}", sample
        )
    if sample.offset < sample.onset:
        builder.problem(
            ERROR, "offset-before-onset", at, f"offset {sample.offset} is before onset {sample.onset}", sample
        )
        return
    middle = (sample.onset + sample.offset) // 2
    if sample.apex is None:
        shown = f"'{apex_text}'" if apex_text else "empty"
        builder.problem(REPAIRED, "apex-unknown", at, f"apex is {shown}: middle frame {middle}", sample)
        sample.apex, sample.apex_source = middle, "middle"
    elif not sample.onset <= sample.apex <= sample.offset:
        builder.problem(
            REPAIRED,
            "apex-outside",
            at,
            f"apex {sample.apex} outside onset..offset {sample.onset}..{sample.offset}: middle frame {middle}",
            sample,
        )
        sample.apex, sample.apex_source = middle, "middle"
    elif sample.apex == sample.onset:
        builder.problem(
            WARNING, "apex-at-onset", at, f"apex equals onset ({sample.onset}): no onset->apex motion", sample
        )

    wanted = range(sample.onset, sample.offset + 1)
    missing = [n for n in wanted if n not in frames]
    broken = {}
    for n in wanted:
        if n in frames:
            reason = image_problem(folder / frames[n])
            if reason:
                broken[n] = reason
    readable = [n for n in wanted if n in frames and n not in broken]
    fatal = len(readable) < 2
    severity = ERROR if fatal else REPAIRED
    if missing:
        names = [name_for(frames, n) for n in missing]
        builder.problem(
            severity, "missing-frame", str(folder), f"{len(missing)} frame(s) missing: {_names(names)}", sample
        )
    for n, reason in broken.items():
        builder.problem(severity, "unreadable-image", str(folder / frames[n]), reason, sample)
    if fatal:
        builder.problem(
            ERROR,
            "too-few-frames",
            at,
            f"{len(readable)} readable frame(s) in onset..offset {sample.onset}..{sample.offset}",
            sample,
        )
        return

    def move(role: str, target: int) -> None:
        old = getattr(sample, role)
        setattr(sample, role, target)
        builder.problem(
            REPAIRED,
            f"{role}-frame-missing",
            at,
            f"{role} frame {old} unreadable or missing: moved to {target}",
            sample,
        )

    if sample.onset not in readable:
        move("onset", readable[0])
    if sample.offset not in readable:
        move("offset", readable[-1])
    if sample.apex not in readable:
        apex = sample.apex  # known here: an unknown apex was set to the middle frame above
        move("apex", min(readable, key=lambda n: (abs(n - apex), n)))
        sample.apex_source = "nearest"
    sample.frame_numbers = readable
    sample.frame_files = [frames[n] for n in readable]
