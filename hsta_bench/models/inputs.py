"""From the cached uint8 arrays (hsta_bench/preprocess) to the float tensors models take.

The cache stores every image kind in RGB order (a flow image as u, v, strain; hsta_bench/data/flowimage.py).
How a model reads it is its `encoding` (a class attribute: input kind -> encoding name; kinds it does not
name read `default`):
- `default`: RGB kinds (frames, special, apex) scaled to 0..1 and normalised with ImageNet's mean and std,
  as HSTA's release does; flow kinds (flow, regions) scaled to 0..1, in RGB order.
- `bgr255`: the channels in cv2.imread's order (B, G, R: for a flow image strain, v, u) and the raw 0..255
  values as floats, unscaled: what STSTNet's release (main.py) and HTNet's (main_HTNet.py) feed their models,
  images read with cv2.imread and turned into tensors as they are.
Layouts: cache (N, T, S, S, 3) -> model (N, 3, T, S, S) (frames, special, and causal with its 4 images as T);
cache (N, S, S, 3) -> model (N, 3, S, S).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from hsta_bench.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RGB_KINDS = ("frames", "special", "apex")
FLOW_KINDS = ("flow", "regions")  # their first cached channel is the horizontal flow u
# CausalNet's four tiled images (preprocess/causal.py): flow-like bytes, scaled to 0..1 by default; two of them are
# direction maps, so mirroring flips them left-right with no channel negated
STACK_KINDS = ("causal",)
ENCODINGS = ("default", "bgr255")
KINDS = RGB_KINDS + FLOW_KINDS + STACK_KINDS  # every kind preprocessing makes (preprocess/kinds.py), not imported
RANKS = {"frames": 4, "special": 4, "flow": 3, "apex": 3, "regions": 3, "causal": 4}  # (3, T, S, S) or (3, S, S)


def encoding_of(model) -> dict[str, str]:
    """Each input kind of `model` with the encoding it reads (one line naming the model when unknown)."""
    declared = dict(getattr(model, "encoding", None) or {})
    name = type(model).__name__
    for kind, enc in declared.items():
        if kind not in model.inputs:
            raise UserError(
                f"model {name}: encoding names input '{kind}', which it does not take "
                f"(its inputs: {', '.join(model.inputs)})"
            )
        if enc not in ENCODINGS:
            raise UserError(
                f"model {name}: unknown encoding '{enc}' for input '{kind}' (known: {', '.join(ENCODINGS)})"
            )
    return {kind: declared.get(kind, "default") for kind in model.inputs}


def to_tensor(kind: str, array: np.ndarray, encoding: str = "default") -> torch.Tensor:
    return normalise(kind, torch.from_numpy(np.ascontiguousarray(array)), encoding)


def normalise(kind: str, raw: torch.Tensor, encoding: str = "default") -> torch.Tensor:
    """A batch of cached uint8 arrays (a tensor on any device) as the float tensor the model takes; on a GPU
    this runs there, so only the uint8 bytes (a quarter of the floats) ever cross the bus."""
    x = raw.float()
    if x.ndim == 5:  # N, T, S, S, 3
        x = x.permute(0, 4, 1, 2, 3)
        shape: tuple[int, ...] = (1, 3, 1, 1, 1)
    else:  # N, S, S, 3
        x = x.permute(0, 3, 1, 2)
        shape = (1, 3, 1, 1)
    if encoding == "bgr255":
        return x.flip(1).contiguous()
    x = x.div_(255.0)
    if kind in RGB_KINDS:
        mean, std = _imagenet(x.device)
        x = (x - mean.view(shape)) / std.view(shape)
    return x.contiguous()


def mirror(kind: str, x: torch.Tensor, encoding: str = "default") -> torch.Tensor:
    """A batch (channels second) mirrored left-right, as the model reads it. A flow image's u changes sign
    with it: on its min-max byte scale u becomes full - u (full = 1 scaled, 255 unscaled); v and strain keep."""
    mirrored = x.flip(-1)
    if kind not in FLOW_KINDS:
        return mirrored
    u, full = (2, 255.0) if encoding == "bgr255" else (0, 1.0)
    return torch.cat([mirrored[:, :u], full - mirrored[:, u : u + 1], mirrored[:, u + 1 :]], dim=1)


def to_unit(kind: str, x: torch.Tensor, encoding: str = "default") -> torch.Tensor:
    """A model-ready batch (channels second) back in unit space: RGB order, 0..1 (where engine/augment.py's
    ops are written); `from_unit` is its inverse."""
    if encoding == "bgr255":
        return x.flip(1) / 255.0
    if kind in RGB_KINDS:
        mean, std = _imagenet(x.device)
        shape = (1, 3) + (1,) * (x.ndim - 2)
        return x * std.view(shape) + mean.view(shape)
    return x


def from_unit(kind: str, x: torch.Tensor, encoding: str = "default") -> torch.Tensor:
    if encoding == "bgr255":
        return (x * 255.0).flip(1).contiguous()
    if kind in RGB_KINDS:
        mean, std = _imagenet(x.device)
        shape = (1, 3) + (1,) * (x.ndim - 2)
        return ((x - mean.view(shape)) / std.view(shape)).contiguous()
    return x.contiguous()


@functools.cache
def _imagenet(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet's mean and std on `device`, made once (a copy to a GPU in every batch would wait for it)."""
    return torch.tensor(IMAGENET_MEAN).to(device), torch.tensor(IMAGENET_STD).to(device)


def preprocess_settings(inputs: dict[str, tuple[int, ...]]) -> list[str]:
    """`--set` overrides that make `prepare` produce exactly these model inputs."""
    sets = [f"preprocess.inputs=[{','.join(inputs)}]"]
    for kind, shape in inputs.items():
        if kind == "frames":
            sets += [f"preprocess.frames={shape[1]}", f"preprocess.size={shape[-1]}"]
        elif kind in ("special", "apex"):
            sets.append(f"preprocess.size={shape[-1]}")
        elif kind in FLOW_KINDS + STACK_KINDS:
            sets.append(f"preprocess.flow.size={shape[-1]}")
    return list(dict.fromkeys(sets))
