"""Onset->apex optical flow (TV-L1 by default, DIS or Farneback) and its stored image form.

The stored image is the precomputed MEGC2019 composite's format (hsta_bench/data/flowimage.py), made the way
that release was made as far as it can be measured (issue 27: 9 real clips against their released images,
`scripts/compare_composite.py`):
- flow is TV-L1 with OpenCV's defaults, on grayscale frames resized to `compute_size` (128: the release's
  flow correlates best with flow computed at 112-160 pixels; at 56 u/v drop from 0.88/0.93 to 0.81/0.74;
  changing TV-L1's parameters moved the medians by less than clip-to-clip noise);
- optical strain is computed at that size, not at the stored size: the released strain correlates only 0.85
  (median over all 442 images) with strain recomputed from the released 28x28 u and v, and strain at 128
  matched the released images better (0.58 against 0.55);
- u, v and strain are each shrunk to `size` with area averaging, then scaled to 0..255 each: every released
  image has 0 and 255 in every channel, so the scaling came after the resize (linear or nearest resizing
  instead of area lowered the strain's correlation to 0.45 / 0.37).
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


def onset_apex_image(
    onset_rgb: np.ndarray, apex_rgb: np.ndarray, method: str, compute_size: int, size: int
) -> np.ndarray:
    """The stored flow image (size x size x 3 uint8: u, v, strain) of two RGB frames (see the module's notes)."""

    def gray(image: np.ndarray) -> np.ndarray:
        return cv2.resize(
            cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (compute_size, compute_size), interpolation=cv2.INTER_AREA
        )

    flow = compute(gray(onset_rgb), gray(apex_rgb), method)
    u, v = flow[..., 0], flow[..., 1]
    strain = flowimage.optical_strain(u, v)
    # each channel is scaled on its own afterwards, so shrinking u and v needs no rescaling of the vectors
    u, v, strain = (cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in (u, v, strain))
    return flowimage.encode_channels(u, v, strain)
