"""CausalNet's own inputs for the MEGC2019 composite (tony19980810/CausalNet, `datasets/STSNet_whole_norm_u_v_os`).

Four 28x28 images per sample, named from the composite's CSV as CausalNet's main_train.py names them
(main_train.py:66-67, 188, 194, 202): `{sub}_{filename_o} .png` (onset->apex optical flow), `..._1 .png`
(apex->offset flow), `..._2 .png` and `..._3 .png` (the direction maps of those two); each stored as the
composite's flow images are (channels strain, v, u as cv2 reads them: its maintainer's description, issues 2
and 4), with the same label CSV as the composite (`combined_3_class2_for_optical_flow.csv`). Its base images are
its own, not the composite's released ones. Only CausalNet reads them (the `causal` input kind,
hsta_bench/preprocess/causal.py); the manifest's `flow_path` is the first image, the other three are found
from its name (`image_paths`).

The stand-in writes the same layout: the onset->apex flow as megc2019-flow's stand-in makes it, the
apex->offset flow as its reverse, and as direction maps the unit direction of each (u / |flow|, v / |flow|),
encoded as flow images. The release's direction maps are its own computation; the stand-in only carries the
same class signal in each of the four images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hsta_bench.data import flowimage
from hsta_bench.data.frames import image_problem
from hsta_bench.data.manifest import ERROR, ManifestBuilder
from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sources.megc2019 import COMPOSITE, composite_rows, released_names, stand_in_clip, stand_in_source

SUFFIXES = ("", "_1", "_2", "_3")  # onset->apex flow, apex->offset flow, their direction maps (main_train.py:188-202)
IMAGES = ("onset->apex flow", "apex->offset flow", "onset->apex direction map", "apex->offset direction map")


def image_paths(first: str | Path) -> list[str]:
    """A sample's four image files from the first one's: `_1`, `_2`, `_3` put before the release's ' .png'
    (main_train.py:188: `n_img.split(' ')[0] + '_1 .png'`; before the extension for a name without a space)."""
    path = Path(first)
    stem, space, rest = path.name.partition(" ")
    if not space:
        stem, rest = path.stem, path.suffix
    return [str(path.with_name(f"{stem}{suffix}{space}{rest}")) for suffix in SUFFIXES]


@dataclass
class CausalSettings:
    csv: str
    image_dir: str
    image_name: str  # the first image, formatted with the CSV's columns: "{sub}_{filename_o} .png"
    labels: tuple[str, ...]  # label code -> class name
    sources: dict[str, str]  # the CSV's dataset column -> source dataset


@register
class CausalnetComposite(DatasetSource):
    name = "causalnet-composite"
    composite = True
    title = "MEGC2019 composite, CausalNet's four images per sample"
    inputs = "causal"
    protocols = (COMPOSITE,)
    Settings = CausalSettings

    def read(self, root: Path, s: CausalSettings, builder: ManifestBuilder) -> None:
        hint = "is this CausalNet's composite? see datasets.causalnet-composite.csv"
        for row in composite_rows(root, s, builder, hint):
            first = root / s.image_dir / s.image_name.format(**row.fields)
            sample = row.add(builder, flow_path=str(first))
            for path, what in zip(image_paths(first), IMAGES):
                if not Path(path).is_file():
                    builder.problem(ERROR, "missing-image", path, f"{what} image not found", sample)
                elif reason := image_problem(Path(path)):
                    builder.problem(ERROR, "unreadable-image", path, f"{what}: {reason}", sample)

    def write_synthetic(self, root: Path, s: CausalSettings, tree) -> None:
        size = int(tree.layout.get("flow_size", 28))
        reverse = {v: k for k, v in s.sources.items()}

        tree.name_clips(stand_in_clip)
        rows = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
        (root / s.image_dir).mkdir(parents=True)
        rng = np.random.default_rng(tree.settings.seed)
        for video in tree.videos:
            event = video.events[0]
            src = stand_in_source(event.subject)
            field = tree.renderer.field(event)
            small = cv2.resize(field, (size, size), interpolation=cv2.INTER_AREA) * (size / field.shape[0])
            forward = small + rng.normal(0, 0.05, small.shape).astype(np.float32)  # flow estimates are noisy
            backward = -small + rng.normal(0, 0.05, small.shape).astype(np.float32)  # the face relaxing
            images = [
                forward,
                backward,
                *(f / (np.linalg.norm(f, axis=-1, keepdims=True) + 0.1) for f in (forward, backward)),
            ]
            first, crop_name = released_names(src, event.subject, event.clip, s.image_name)
            for path, flow in zip(image_paths(root / s.image_dir / first), images):
                cv2.imwrite(path, flowimage.encode(flow[..., 0], flow[..., 1])[..., ::-1])  # stored RGB
            rows.append(f"{reverse[src]},{event.subject},{event.clip},{s.labels.index(event.emotion)},,{crop_name},")
        (root / s.csv).write_text("\n".join(rows) + "\n")
