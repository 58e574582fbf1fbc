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
        csv = root / s.csv
        if not csv.is_file():
            raise UserError(
                f"{root}: no {s.csv} (is this the precomputed MEGC2019 composite? see datasets.megc2019-flow.csv)"
            )
        try:
            table = pl.read_csv(csv, infer_schema=False)
        except Exception as exc:  # polars raises several types for malformed CSV
            raise UserError(
                f"{csv}: not a readable CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
        needed = ["dataset", "sub", "filename_o", "label", "imagename"]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise UserError(f"{csv}:row 1: missing column(s) {', '.join(missing)} (found {', '.join(table.columns)})")
        if table.height == 0:
            raise UserError(f"{csv}: no samples below the header")
        for i, row in enumerate(table.iter_rows(named=True)):
            number = i + 2  # the header is line 1
            at = where(csv, number)
            source = s.sources.get((row["dataset"] or "").strip())
            if source is None:
                builder.problem(
                    ERROR, "bad-dataset", at, f"dataset {row['dataset']!r} is not one of {', '.join(s.sources)}"
                )
                continue
            try:
                subject = SUBJECT_IDS[source](row["sub"])
            except ValueError as exc:
                builder.problem(ERROR, "bad-subject", at, f"sub {row['sub']!r}: {exc}")
                continue
            clip = (row["filename_o"] or "").strip()
            if not clip:
                builder.problem(ERROR, "bad-clip", at, "empty filename_o")
                continue
            code = (row["label"] or "").strip()
            emotion = s.labels[int(code)] if re.fullmatch(r"\d+", code) and int(code) < len(s.labels) else code
            flow = root / s.flow_dir / s.flow_name.format(**{k: (v or "") for k, v in row.items()})
            crop = root / s.crops_dir / row["imagename"].strip() if row["imagename"] else None
            sample = Sample(
                source=source,
                subject=subject,
                clip=CLIP_IDS.get(source, str)(clip),
                emotion=emotion,
                source_file=str(csv),
                source_row=number,
                flow_path=str(flow),
                apex_image=str(crop) if crop else None,
                apex_source=None,
                face_crop=True,
            )
            builder.add(sample)
            if emotion not in s.labels:
                builder.problem(
                    ERROR, "unknown-emotion", at, f"label {code!r} is not a code 0..{len(s.labels) - 1}", sample
                )
            if not flow.is_file():
                builder.problem(ERROR, "missing-flow", str(flow), "flow image not found", sample)
            elif reason := image_problem(flow):
                builder.problem(ERROR, "unreadable-image", str(flow), reason, sample)
            if crop is None or not crop.is_file():
                builder.problem(
                    WARNING,
                    "missing-crop",
                    str(crop or csv),
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

        def source_of(subject: str) -> str:
            return "casme2" if subject.startswith("sub") else "smic" if subject.startswith("s") else "samm"

        def name(event, k):
            src = source_of(event.subject)
            if src == "casme2":
                return f"EP{k:02d}_0{1 + k % 3}f"
            if src == "samm":
                return f"{event.subject}_{1 + k % 7}_{k}"
            return f"{event.subject}_{dict(negative='ne', positive='po').get(event.emotion, 'sur')}_{k:02d}"

        tree.name_clips(name)
        rows = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
        (root / s.flow_dir).mkdir(parents=True)
        (root / s.crops_dir).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(tree.settings.seed)
        for video in tree.videos:
            event = video.events[0]
            src = source_of(event.subject)
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


def released_names(source: str, subject: str, clip: str, flow_name: str) -> tuple[str, str]:
    """(flow image, apex crop) file names of a composite sample as released: `flow_name` formatted with the
    CSV's sub and filename_o; SMIC's crops keep its folders' spelling (`s03_s3_po_05.jpg`)."""
    flow = flow_name.format(sub=subject, filename_o=clip)
    return flow, f"{subject}_{smic_folder_clip(clip) if source == 'smic' else clip}.jpg"


def smic_folder_clip(clip: str) -> str:
    """s01_ne_01 -> s1_ne_01: the spelling of SMIC's own folders."""
    head, _, rest = clip.partition("_")
    return f"s{int(head[1:])}_{rest}"
