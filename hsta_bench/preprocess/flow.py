"""Onset->apex optical flow (TV-L1 by default, DIS or Farneback) and its stored image form.

Flow is computed on grayscale frames resized to `compute_size`, in pixels of that size; the stored
image is `size` x `size` with u, v and optical strain each scaled to 0..255, exactly the format of the
precomputed MEGC2019 composite (hsta_bench/data/flowimage.py), so a model trained on one reads the other.
"""

from __future__ import annotations

import cv2
import numpy as np

from hsta_bench.data import flowimage


def compute(prev: np.ndarray, nxt: np.ndarray, method: str) -> np.ndarray:
    """H x W x 2 float32 flow (u right, v down) from grayscale uint8 `prev` to `nxt`, in pixels."""
    prev, nxt = np.ascontiguousarray(prev), np.ascontiguousarray(nxt)  # OpenCV needs contiguous buffers
    # OpenCV's stubs list only the classes' `create`, not these factory functions (both exist at runtime,
    # the TV-L1 one in opencv-contrib), and type `flow` as required where None lets OpenCV allocate it
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create().calc(prev, nxt, None)  # type: ignore[attr-defined]
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        return dis.calc(prev, nxt, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    raise ValueError(f"unknown flow method {method!r}")


def resize(flow: np.ndarray, size: int) -> np.ndarray:
    """The flow field at size x size, its vectors rescaled to pixels of the new size."""
    h, w = flow.shape[:2]
    out = cv2.resize(flow, (size, size), interpolation=cv2.INTER_AREA)
    out[..., 0] *= size / w
    out[..., 1] *= size / h
    return out


def onset_apex_image(
    onset_rgb: np.ndarray, apex_rgb: np.ndarray, method: str, compute_size: int, size: int
) -> np.ndarray:
    """The stored flow image (size x size x 3 uint8: u, v, strain) of two RGB frames."""

    def gray(image: np.ndarray) -> np.ndarray:
        return cv2.resize(
            cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (compute_size, compute_size), interpolation=cv2.INTER_AREA
        )

    flow = resize(compute(gray(onset_rgb), gray(apex_rgb), method), size)
    return flowimage.encode(flow[..., 0], flow[..., 1])
