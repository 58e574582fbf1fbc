"""Typed view of configs/preprocess.yaml (`--set preprocess.KEY=VALUE`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsta_bench import config as config_mod
from hsta_bench.errors import UserError

FLOW_METHODS = ("tvl1", "dis", "farneback")
FACE_CROP = ("auto", "mtcnn", "haar", "none")


@dataclass(frozen=True)
class FlowSettings:
    method: str
    compute_size: int
    size: int


@dataclass(frozen=True)
class PreprocessSettings:
    inputs: str | tuple[str, ...]
    size: int
    frames: int
    max_span: int
    interpolate: bool
    face_crop: str
    crop_margin: float
    flow: FlowSettings
    workers: int
    cascade: Path | None = None


def from_config(cfg: dict) -> PreprocessSettings:
    raw = dict(cfg["preprocess"])
    flow = config_mod.typed(FlowSettings, raw.pop("flow"), "preprocess.flow")
    s = config_mod.typed(PreprocessSettings, {**raw, "flow": flow}, "preprocess")
    checks = [
        (
            flow.method in FLOW_METHODS,
            f"preprocess.flow.method: '{flow.method}' is not one of {', '.join(FLOW_METHODS)}",
        ),
        (s.face_crop in FACE_CROP, f"preprocess.face_crop: '{s.face_crop}' is not one of {', '.join(FACE_CROP)}"),
        (
            s.size >= 8 and flow.size >= 4 and flow.compute_size >= 16,
            "preprocess: size >= 8, flow.size >= 4, flow.compute_size >= 16",
        ),
        (s.frames >= 1 and s.max_span >= 1, "preprocess: frames and max_span must be at least 1"),
        (s.workers >= 1, f"preprocess.workers: {s.workers} is not a number of processes"),
        (0 <= s.crop_margin <= 1, "preprocess.crop_margin: expected 0..1"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return s
