"""`datasets export megc2019-composite`: the precomputed composite's files, made from the user's own copies.

The MEGC2019 composite as HTNet, STSTNet and CausalNet ship it (and as `megc2019-flow` reads it) is a CSV,
28x28 onset->apex flow images and 224x224 apex crops. Nobody released the code that made them; this writes
the same files from CASME II, SAMM and SMIC as distributed, through `datasets prepare` (face crop, TV-L1,
strain, encoding: hsta_bench/preprocess/flow.py says which choices match the release and how that was
measured), with the release's names, sizes, channel order and value ranges:

- `combined_3_class2_for_optical_flow.csv`: dataset, sub, filename_o, label (0 negative, 1 positive,
  2 surprise), apex and sub_filename empty, imagename;
- `datasets/STSNet_whole_norm_u_v_os/<sub>_<filename_o> .png` (the space is the release's): R = u, G = v,
  B = strain, each 0..255;
- `datasets/combined_datasets_whole/<imagename>`: the apex crop, RGB; SMIC's keep its folder spelling
  (`s03_s3_po_05.jpg` beside `s03_s03_po_05 .png`), as released.

The folder is written whole or not at all (built beside the output, then renamed into place).

How close, measured on the 9 real clips of ../shared/data/real-clips (tests/test_export.py,
scripts/compare_composite.py): the exported flow images correlate with the released ones at a median of
0.81 (u), 0.85 (v), 0.49 (strain); STSTNet's published fold weights give the same class on 7 of the 9.
What limits it:
- the crop: with each clip's released box itself (fitted by ECC), the same flow code reaches 0.88 / 0.93 /
  0.58; CASME II's released crops are rotated to level the eyes (sub01: 3.3 degrees, the eye line's angle)
  and sit up to 8 px off the centre of the clips' crops, which a detected box does not reproduce;
- SAMM: its three clips stay at u 0.23-0.61 whatever was varied (onset -0..+10 and apex +-12 frames, flow
  computed at 64-256 px, TV-L1 lambda 0.15-1, the released box), though the released apex crops are the
  clips' frames (ECC 0.995-0.999): the release's SAMM flow was made some way the 128 px clips cannot show;
- the clips are 128 px crops, smaller than the datasets' frames the release started from.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hsta_bench.data.load import load_manifest
from hsta_bench.data.manifest import label_column
from hsta_bench.data.registry import get_source, settings_for
from hsta_bench.data.sources.megc2019 import COMPOSITE, released_names
from hsta_bench.errors import UserError
from hsta_bench.preprocess.pipeline import load_prepared

FLOW = "megc2019-flow"  # the dataset that reads what this writes: its settings name the files
APEX_SIZE = 224  # the released apex crops' size
FLOW_SIZE = 28  # the released flow images' size
# The released crops are the distributed face crops stretched to a square, and detected boxes of that shape
# where a dataset distributes none. Each released apex crop aligned to its real clip's apex frame (ECC,
# correlation >= 0.987 for all 9 clips) covers a box 0.71-0.87 as wide as tall (median 0.81); for SMIC
# exactly the distributed reg_image (the clips pad it to a square with 12 black columns each side). So
# distributed crops are used whole (stretched) and detected boxes are narrowed to 0.8 of their height.
RELEASE_CROP_ASPECT = 0.8


@dataclass
class ExportReport:
    output: str
    written: list[str]  # sample ids, in the CSV's order
    missing: list[dict]  # sample_id, where, reason: composite samples the given copies could not make
    not_given: list[str]  # the composite's source datasets with no data root: none of their samples made
    face_crop: str
    seconds: float

    def as_dict(self) -> dict:
        return {
            "output": self.output,
            "samples": len(self.written),
            "written": self.written,
            "missing": self.missing,
            "not_given": self.not_given,
            "face_crop": self.face_crop,
            "seconds": round(self.seconds, 3),
        }


def export_settings(cfg: dict) -> dict:
    """`cfg` with the inputs, sizes and crop shape of the release (whatever preprocess.size, flow.size and
    crop_aspect say); the flow's method and compute size stay the user's (flow.py's defaults are the release's)."""
    out = copy.deepcopy(cfg)
    pre = out["preprocess"]
    pre["inputs"] = ["flow", "apex"]
    pre["size"] = APEX_SIZE
    pre["flow"]["size"] = FLOW_SIZE
    pre["crop_aspect"] = RELEASE_CROP_ASPECT
    return out


def export(cfg: dict, output: Path, progress=None, announce=None) -> ExportReport:
    """Write the composite's released files for every composite sample the configured copies hold."""
    start = time.perf_counter()
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"--output {output}: exists and is not an empty folder (nothing is overwritten)")
    flow_settings = settings_for(FLOW, cfg)
    reverse = {source: name for name, source in flow_settings.sources.items()}
    composite = get_source(COMPOSITE)
    given = [part for part in composite.parts if cfg["datasets"][part].get("root") is not None]
    if not given:
        raise UserError(
            "datasets export megc2019-composite: give the copies to make it from "
            f"(--data-root {'=PATH --data-root '.join(composite.parts)}=PATH, any of them)"
        )
    manifest = composite.combine([load_manifest(part, cfg, announce) for part in given])
    if manifest.synthetic:  # a root that holds a stand-in: the export is of real data only
        raise UserError(f"datasets export: {manifest.root} holds a synthetic stand-in, not a dataset")
    prepared = load_prepared(COMPOSITE, export_settings(cfg), progress, announce, manifest)
    report = prepared.report
    assert report is not None  # load_prepared always reports
    flows, crops = prepared.inputs("flow"), prepared.inputs("apex")
    rows = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
    written = []
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        flow_dir, crop_dir = staging / flow_settings.flow_dir, staging / flow_settings.crops_dir
        flow_dir.mkdir(parents=True)
        crop_dir.mkdir(parents=True)
        labels = prepared.manifest[label_column(COMPOSITE)].to_list()
        for i, sample in enumerate(prepared.manifest.iter_rows(named=True)):
            source, subject, clip = sample["source"], sample["subject"], sample["clip"]
            flow_name, crop_name = released_names(source, subject, clip, flow_settings.flow_name)
            # cv2 writes BGR: reversed, the files hold R = u, G = v, B = strain and the crop in RGB order
            _write(flow_dir / flow_name, np.ascontiguousarray(flows[i][..., ::-1]))
            _write(crop_dir / crop_name, np.ascontiguousarray(crops[i][..., ::-1]))
            code = flow_settings.labels.index(labels[i])
            rows.append(f"{reverse[source]},{subject},{clip},{code},,{crop_name},")
            written.append(sample["sample_id"])
        if not written:
            raise UserError("datasets export: no composite sample could be made from the given copies")
        (staging / flow_settings.csv).write_text("\n".join(rows) + "\n")
        if output.exists():
            output.rmdir()  # empty, checked above
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    missing = list(report.excluded)
    return ExportReport(
        str(output),
        written,
        missing,
        [p for p in composite.parts if p not in given],
        report.face_crop,
        time.perf_counter() - start,
    )


def _write(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise UserError(f"{path}: could not be written")


def compare(ours: Path, released: Path, cfg: dict) -> list[dict]:
    """Per sample of an export also in `released` (both in the release's layout, read by `megc2019-flow`):
    the Pearson correlation of each flow channel (u, v, strain) between the two images, in the export's CSV
    order."""
    s = settings_for(FLOW, cfg)
    config = copy.deepcopy(cfg)
    config["datasets"][FLOW]["root"] = str(ours)
    out = []
    for path in load_manifest(FLOW, config).frame["flow_path"]:
        name = Path(path).name
        mine, theirs = cv2.imread(path), cv2.imread(str(Path(released) / s.flow_dir / name))
        if mine is None or theirs is None:
            continue
        mine, theirs = mine[..., ::-1].astype(np.float64), theirs[..., ::-1].astype(np.float64)  # u, v, strain
        r = [float(np.corrcoef(mine[..., c].ravel(), theirs[..., c].ravel())[0, 1]) for c in range(3)]
        out.append({"name": name, "u": r[0], "v": r[1], "strain": r[2]})
    return out
