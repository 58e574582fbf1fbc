"""The flow-image format of the precomputed MEGC2019 composite, shared by its reader and its writers.

An onset->apex optical flow is stored as an RGB image: R = horizontal flow u, G = vertical flow v,
B = optical strain, each channel scaled to 0..255 on its own (min..max of that image). Models trained on
the precomputed composite therefore run on flow computed by this suite, and the other way round.
"""

from __future__ import annotations

import numpy as np


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Magnitude of the strain tensor of the flow (u, v): sqrt(exx^2 + eyy^2 + 2 exy^2)."""
    du_dy, du_dx = np.gradient(u.astype(np.float32))
    dv_dy, dv_dx = np.gradient(v.astype(np.float32))
    exy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2 * exy**2)


def _to_byte(channel: np.ndarray) -> np.ndarray:
    lo, hi = float(channel.min()), float(channel.max())
    if hi - lo < 1e-12:
        return np.zeros(channel.shape, np.uint8)
    return np.rint((channel - lo) / (hi - lo) * 255).astype(np.uint8)


def encode(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 in RGB order (u, v, strain of this u, v), each scaled to 0..255."""
    return encode_channels(u, v, optical_strain(u, v))


def encode_channels(u: np.ndarray, v: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 in RGB order from three channels already at the stored size, each scaled to 0..255."""
    return np.stack([_to_byte(u), _to_byte(v), _to_byte(strain)], axis=-1)
