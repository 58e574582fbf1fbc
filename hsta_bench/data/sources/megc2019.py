"""The MEGC2019 composite, twice: built from the three source datasets, and as the precomputed release.

`megc2019-composite` takes the CASME II, SAMM and SMIC manifests and keeps the samples the
`megc2019-composite` protocol labels (configs/protocols.yaml): 442 samples of 68 subjects on the
distributed sheets. `megc2019-flow` reads the widely reused precomputed release (../shared/data):
`combined_3_class2_for_optical_flow.csv`, 28x28 onset->apex flow images (see flowimage.py) and 224x224
apex crops, whose SMIC names differ from the flow names (`s01_s1_sur_01.jpg` vs `s01_s01_sur_01 .png`),
hence the crop is taken from the CSV's `imagename` column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from hsta_bench.data import flowimage
from hsta_bench.data.frames import image_problem
from hsta_bench.data.manifest import ERROR, WARNING, Manifest, ManifestBuilder, Problem, Sample, label_column, where
from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sources import casme2, samm, smic
from hsta_bench.data.synth.faces import render
from hsta_bench.errors import UserError

COMPOSITE = "megc2019-composite"
SUBJECT_IDS = {"casme2": casme2.subject_id, "samm": samm.subject_id, "smic": smic.subject_id}
CLIP_IDS = {"smic": smic.clip_id}


@dataclass
class CompositeSettings:
    pass


@register
class Megc2019Composite(DatasetSource):
    name = COMPOSITE
    title = "MEGC2019 composite (from CASME II, SAMM, SMIC)"
    inputs = "frames"
    protocols = (COMPOSITE,)
    parts = ("casme2", "samm", "smic")
    composite = True
    Settings = CompositeSettings

    def combine(self, manifests: list[Manifest]) -> Manifest:
        col = label_column(COMPOSITE)
        frames, problems = [], []
        for m in manifests:
            kept = m.frame.filter(pl.col(col).is_not_null())
            ids = set(kept["sample_id"].to_list())
            frames.append(kept)
            for p in m.problems:
                if p.sample_id is None or p.sample_id in ids:
                    problems.append(p)
                elif p.kind == "unknown-emotion":  # cannot be in the composite, but say so
                    problems.append(
                        Problem(WARNING, p.kind, p.where, p.message + "; left out of the composite", p.sample_id)
                    )
        frame = pl.concat(frames).with_columns(pl.lit(COMPOSITE).alias("dataset"))
        root = "; ".join(f"{m.name}={m.root}" for m in manifests)
        return Manifest(COMPOSITE, root, any(m.synthetic for m in manifests), frame, problems)


@dataclass
class FlowSettings:
    csv: str
    flow_dir: str
    flow_name: str  # format with the CSV's columns, e.g. "{sub}_{filename_o} .png"
    crops_dir: str
    labels: tuple[str, ...]  # label code -> class name
    sources: dict[str, str]  # the CSV's dataset column -> source dataset


@register
class Megc2019Flow(DatasetSource):
    name = "megc2019-flow"
    composite = True
    title = "MEGC2019 composite, precomputed flow + apex crops"
    inputs = "flow"
    protocols = (COMPOSITE,)
    Settings = FlowSettings

    def read(self, root: Path, s: FlowSettings, builder: ManifestBuilder) -> None:
        hint = "is this the precomputed MEGC2019 composite? see datasets.megc2019-flow.csv"
        for row in composite_rows(root, s, builder, hint, ("imagename",)):
            flow = root / s.flow_dir / s.flow_name.format(**row.fields)
            crop = root / s.crops_dir / row.fields["imagename"].strip() if row.fields["imagename"] else None
            sample = row.add(builder, flow_path=str(flow), apex_image=str(crop) if crop else None)
            if not flow.is_file():
                builder.problem(ERROR, "missing-flow", str(flow), "flow image not found", sample)
            elif reason := image_problem(flow):
                builder.problem(ERROR, "unreadable-image", str(flow), reason, sample)
            if crop is None or not crop.is_file():
                builder.problem(
                    WARNING,
                    "missing-crop",
                    str(crop or row.csv),
                    "apex crop not found (flow-only models still use the sample)",
                    sample,
                )
                sample.apex_image = None
            elif reason := image_problem(crop):
                builder.problem(
                    WARNING, "unreadable-image", str(crop), reason + " (flow-only models still use the sample)", sample
                )
                sample.apex_image = None

    def write_synthetic(self, root: Path, s: FlowSettings, tree) -> None:
        size = int(tree.layout.get("flow_size", 28))
        reverse = {v: k for k, v in s.sources.items()}
        tree.name_clips(stand_in_clip)
        rows = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
        (root / s.flow_dir).mkdir(parents=True)
        (root / s.crops_dir).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(tree.settings.seed)
        for video in tree.videos:
            event = video.events[0]
            src = stand_in_source(event.subject)
            field = tree.renderer.field(event)
            scale = size / field.shape[0]
            small = cv2.resize(field, (size, size), interpolation=cv2.INTER_AREA) * scale
            small += rng.normal(0, 0.05, small.shape).astype(np.float32)  # flow estimates are noisy
            image = flowimage.encode(small[..., 0], small[..., 1])
            flow_name, crop_name = released_names(src, event.subject, event.clip, s.flow_name)
            cv2.imwrite(str(root / s.flow_dir / flow_name), image[..., ::-1])  # stored RGB
            apex = render(tree.renderer.face(event.subject), field, 1.0, rng, gray=False)
            cv2.imwrite(str(root / s.crops_dir / crop_name), apex)
            rows.append(f"{reverse[src]},{event.subject},{event.clip},{s.labels.index(event.emotion)},,{crop_name},")
        (root / s.csv).write_text("\n".join(rows) + "\n")


@dataclass
class CompositeRow:
    """One checked row of the composite's label CSV (combined_3_class2_for_optical_flow.csv)."""

    fields: dict[str, str]  # the CSV's columns, None read as ""
    csv: Path
    number: int  # its line (the header is line 1)
    source: str
    subject: str
    clip: str
    code: str  # the label column as written
    emotion: str  # its class name (the code itself where it is no code: reported by `add`)
    labels: tuple[str, ...]

    def add(self, builder: ManifestBuilder, **files) -> Sample:
        """The row's sample, with its files (`flow_path`, `apex_image`), added; an unknown label reported."""
        sample = Sample(
            source=self.source,
            subject=self.subject,
            clip=CLIP_IDS.get(self.source, str)(self.clip),
            emotion=self.emotion,
            source_file=str(self.csv),
            source_row=self.number,
            apex_source=None,
            face_crop=True,
            **files,
        )
        builder.add(sample)
        if self.emotion not in self.labels:
            builder.problem(
                ERROR,
                "unknown-emotion",
                where(self.csv, self.number),
                f"label {self.code!r} is not a code 0..{len(self.labels) - 1}",
                sample,
            )
        return sample


def composite_rows(
    root: Path, s, builder: ManifestBuilder, hint: str, more: tuple[str, ...] = ()
) -> Iterator[CompositeRow]:
    """The rows of a composite's label CSV (`s.csv` under `root`; `s.sources`, `s.labels` from its settings)
    that name a known dataset, a subject and a clip (the others reported to `builder`, one problem each); a
    missing or unreadable file, or missing columns (`more` besides the four every composite has), stop with
    one line, `hint` in it where the file is missing."""
    csv, sources, labels = root / s.csv, s.sources, s.labels
    if not csv.is_file():
        raise UserError(f"{root}: no {s.csv} ({hint})")
    try:
        table = pl.read_csv(csv, infer_schema=False)
    except Exception as exc:  # polars raises several types for malformed CSV
        raise UserError(
            f"{csv}: not a readable CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    missing = [c for c in ("dataset", "sub", "filename_o", "label", *more) if c not in table.columns]
    if missing:
        raise UserError(f"{csv}:row 1: missing column(s) {', '.join(missing)} (found {', '.join(table.columns)})")
    if table.height == 0:
        raise UserError(f"{csv}: no samples below the header")
    for i, raw in enumerate(table.iter_rows(named=True)):
        number = i + 2  # the header is line 1
        at = where(csv, number)
        fields = {k: (v or "") for k, v in raw.items()}
        source = sources.get(fields["dataset"].strip())
        if source is None:
            builder.problem(ERROR, "bad-dataset", at, f"dataset {raw['dataset']!r} is not one of {', '.join(sources)}")
            continue
        try:
            subject = SUBJECT_IDS[source](raw["sub"])
        except ValueError as exc:
            builder.problem(ERROR, "bad-subject", at, f"sub {raw['sub']!r}: {exc}")
            continue
        clip = fields["filename_o"].strip()
        if not clip:
            builder.problem(ERROR, "bad-clip", at, "empty filename_o")
            continue
        code = fields["label"].strip()
        emotion = labels[int(code)] if re.fullmatch(r"\d+", code) and int(code) < len(labels) else code
        yield CompositeRow(fields, csv, number, source, subject, clip, code, emotion, labels)


def stand_in_source(subject: str) -> str:
    """The source of a stand-in subject, from its name as the composite spells them (sub01, 006, s01)."""
    return "casme2" if subject.startswith("sub") else "smic" if subject.startswith("s") else "samm"


def stand_in_clip(event, k: int) -> str:
    """A stand-in clip's name in its source's spelling (EP02_01f, 006_1_2, s01_ne_01)."""
    src = stand_in_source(event.subject)
    if src == "casme2":
        return f"EP{k:02d}_0{1 + k % 3}f"
    if src == "samm":
        return f"{event.subject}_{1 + k % 7}_{k}"
    return f"{event.subject}_{dict(negative='ne', positive='po').get(event.emotion, 'sur')}_{k:02d}"


def released_names(source: str, subject: str, clip: str, flow_name: str) -> tuple[str, str]:
    """(flow image, apex crop) file names of a composite sample as released: `flow_name` formatted with the
    CSV's sub and filename_o; SMIC's crops keep its folders' spelling (`s03_s3_po_05.jpg`)."""
    flow = flow_name.format(sub=subject, filename_o=clip)
    return flow, f"{subject}_{smic_folder_clip(clip) if source == 'smic' else clip}.jpg"


def smic_folder_clip(clip: str) -> str:
    """s01_ne_01 -> s1_ne_01: the spelling of SMIC's own folders."""
    head, _, rest = clip.partition("_")
    return f"s{int(head[1:])}_{rest}"
