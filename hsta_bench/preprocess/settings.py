"""Typed view of configs/preprocess.yaml (`--set preprocess.KEY=VALUE`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from hsta_bench import config as config_mod
from hsta_bench.config import Bool, ExpandedPath, Float, Int


@dataclass(frozen=True)
class FlowSettings:
    method: Literal["tvl1", "dis", "farneback"]
    compute_size: Annotated[Int, Field(ge=16)]
    size: Annotated[Int, Field(ge=4)]


@dataclass(frozen=True)
class PreprocessSettings:
    """configs/preprocess.yaml (every setting's default, and what each means)"""

    inputs: str | tuple[str, ...]  # auto, or a list of kinds (checked against the dataset by the preprocessing)
    size: Annotated[Int, Field(ge=8)]
    frames: Annotated[Int, Field(ge=1)]
    max_span: Annotated[Int, Field(ge=1)]
    interpolate: Bool
    face_crop: Literal["auto", "mtcnn", "haar", "none"]
    cascade: ExpandedPath | None
    crop_margin: Annotated[Float, Field(ge=0, le=1)]
    crop_aspect: Annotated[Float, Field(gt=0, le=1)]
    flow: FlowSettings
    workers: Annotated[Int, Field(ge=1)]


def from_config(cfg: dict) -> PreprocessSettings:
    return config_mod.typed(PreprocessSettings, cfg["preprocess"], "preprocess")
