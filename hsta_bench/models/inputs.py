"""From the cached uint8 arrays (hsta_bench/preprocess) to the float tensors models take.

RGB kinds (frames, special, apex) are scaled to 0..1 and normalised with ImageNet's mean and std, as
HSTA's release does; flow images (u, v, strain) are scaled to 0..1, as STSTNet's release does.
Layouts: cache (N, T, S, S, 3) -> model (N, 3, T, S, S); cache (N, S, S, 3) -> model (N, 3, S, S).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RGB_KINDS = ("frames", "special", "apex")


def to_tensor(kind: str, array: np.ndarray) -> torch.Tensor:
    return normalise(kind, torch.from_numpy(np.ascontiguousarray(array)))


def normalise(kind: str, raw: torch.Tensor) -> torch.Tensor:
    """A batch of cached uint8 arrays (a tensor on any device) as the float tensor the model takes; on a GPU
    this runs there, so only the uint8 bytes (a quarter of the floats) ever cross the bus."""
    x = raw.float().div_(255.0)
    if x.ndim == 5:  # N, T, S, S, 3
        x = x.permute(0, 4, 1, 2, 3)
        shape = (1, 3, 1, 1, 1)
    else:  # N, S, S, 3
        x = x.permute(0, 3, 1, 2)
        shape = (1, 3, 1, 1)
    if kind in RGB_KINDS:
        mean, std = _imagenet(x.device)
        x = (x - mean.view(shape)) / std.view(shape)
    return x.contiguous()


@functools.lru_cache(maxsize=None)
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
        elif kind == "flow":
            sets.append(f"preprocess.flow.size={shape[-1]}")
    return list(dict.fromkeys(sets))
