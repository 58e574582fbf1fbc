"""The model input kinds preprocessing produces; models declare which ones they need (by these names).

| kind    | array per sample       | from a video dataset               | from a precomputed-flow dataset |
|---------|------------------------|------------------------------------|---------------------------------|
| frames  | T x S x S x 3 uint8 RGB | T frames sampled onset..offset     | -                               |
| special | 2 x S x S x 3 uint8 RGB | the onset and apex frames          | -                               |
| flow    | F x F x 3 uint8         | onset->apex flow: u, v, strain     | the released flow image         |
| apex    | S x S x 3 uint8 RGB     | the apex frame                     | the released apex crop          |
| regions | F x F x 3 uint8         | HTNet's 4 crops of flow, tiled     | the same of the released flow   |
| causal  | 4 x F x F x 3 uint8     | -                                  | -                               |
(regions: crops around MTCNN landmarks of the apex face, as HTNet's release makes them: regions.py)
(causal: CausalNet's four images, each cut into 4 blocks and tiled as its release does (causal.py); only a
dataset of those images gives it: causalnet-composite)
(T = preprocess.frames, S = preprocess.size, F = preprocess.flow.size)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from hsta_bench.errors import UserError
from hsta_bench.preprocess import causal, regions
from hsta_bench.preprocess.crop import choose_detector
from hsta_bench.preprocess.settings import PreprocessSettings


def _crop(s: PreprocessSettings) -> dict:
    # the detector face_crop resolves to here (auto: MTCNN when installed), so that changing it recomputes
    detector = choose_detector(s.face_crop, s.cascade)
    return {
        "face_crop": s.face_crop,
        "face_detector": detector.name if detector else None,
        "cascade": detector.cascade if detector else None,
        "crop_margin": s.crop_margin,
        "crop_aspect": s.crop_aspect,
    }


@dataclass(frozen=True)
class InputKind:
    name: str
    sources: tuple[str, ...]  # dataset input types that can give it (DatasetSource.inputs)
    shape: Callable[[PreprocessSettings], tuple[int, ...]]
    depends_on: Callable[[PreprocessSettings], dict]  # the settings that change it: part of its cache key


KINDS = {
    k.name: k
    for k in (
        InputKind(
            "frames",
            ("frames",),
            lambda s: (s.frames, s.size, s.size, 3),
            lambda s: {
                "size": s.size,
                "frames": s.frames,
                "max_span": s.max_span,
                "interpolate": s.interpolate,
                **_crop(s),
            },
        ),
        InputKind("special", ("frames",), lambda s: (2, s.size, s.size, 3), lambda s: {"size": s.size, **_crop(s)}),
        InputKind(
            "flow",
            ("frames", "flow"),
            lambda s: (s.flow.size, s.flow.size, 3),
            lambda s: {"flow": asdict(s.flow), **_crop(s)},
        ),
        InputKind("apex", ("frames", "flow"), lambda s: (s.size, s.size, 3), lambda s: {"size": s.size, **_crop(s)}),
        # not in DEFAULTS: made for the models that ask for it (it runs a face detector on every sample)
        InputKind(
            "regions",
            ("frames", "flow"),
            lambda s: (s.flow.size, s.flow.size, 3),
            lambda s: {
                "flow": asdict(s.flow),
                **_crop(s),
                "detector": regions.detector_name(),
                "landmarks_at": s.flow.size,
                "code": regions.code_digest(),
            },
        ),
        InputKind(
            "causal",
            ("causal",),
            lambda s: (4, s.flow.size, s.flow.size, 3),
            lambda s: {"size": s.flow.size, "code": causal.code_digest()},
        ),
    )
}

DEFAULTS = {"frames": ("frames", "special", "flow"), "flow": ("flow", "apex"), "causal": ("causal",)}
GIVES = {"frames": "video frames", "flow": "precomputed flow", "causal": "CausalNet's four images per sample"}


def givers(kind: str) -> list[str]:
    """The registered datasets that can give input `kind`."""
    from hsta_bench.data import get_source, list_sources  # noqa: PLC0415 - the data layer registers on first use

    return [name for name in list_sources() if get_source(name).inputs in KINDS[kind].sources]


def resolve(requested: str | tuple[str, ...], dataset: str, inputs: str) -> tuple[str, ...]:
    """The kinds to prepare for a dataset whose samples provide `inputs` ("frames" or "flow")."""
    if requested == "auto":
        return DEFAULTS[inputs]
    names = (requested,) if isinstance(requested, str) else tuple(requested)
    for name in names:
        if name not in KINDS:
            raise UserError(f"preprocess.inputs: unknown input '{name}' (known: {', '.join(KINDS)}, or auto)")
        if inputs not in KINDS[name].sources:
            raise UserError(
                f"preprocess.inputs: {dataset} has {GIVES.get(inputs, inputs)} only; it cannot give '{name}' "
                f"(datasets that can: {', '.join(givers(name))})"
            )
    return tuple(dict.fromkeys(names))
