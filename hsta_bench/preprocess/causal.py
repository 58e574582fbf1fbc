"""CausalNet's input (the `causal` input kind): a sample's four images, each cut into four blocks and tiled.

As the release makes it (tony19980810/CausalNet, main_train.py):
- images: `NAME .png` (onset->apex flow), `NAME_1 .png` (apex->offset flow), `NAME_2 .png` and `NAME_3 .png`
  (their direction maps), in that order (main_train.py:184-210), read with cv2.imread (main_train.py:112);
- points: HTNet's no-face points for every sample (main_train.py:69-77 sets `batch_landmarks` to None and then to
  the fixed points), each coordinate clamped to 7..21 and truncated (main_train.py:79-89): (9, 11), (21, 10),
  (15, 17), (10, 21), (20, 21), hsta_bench/preprocess/regions.py's `fallback`;
- blocks: 14x14 at image[a - 7:a + 7, b - 7:b + 7] for the point (a, b), the first coordinate indexing rows
  (main_train.py:114-123);
- tiling: blocks 0 and 1 side by side on top, 3 and 4 below; block 2 (the nose) unused (main_train.py:184-186):
  HTNet's tiling, regions.tile_regions;
- the four tiles of a sample stacked in that order, float tensors of the bytes as they are (main_train.py:280-282).
At another image size F (preprocess.flow.size, a multiple of 4) the images are resized to F and the points scale
as regions.py scales them. Cropping mixes no channels: the tiles are cut from the RGB images and stored in RGB,
like `flow`; the model reads them in the release's BGR order (its encoding, hsta_bench/models/inputs.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hsta_bench.data.sources.causalnet import image_paths
from hsta_bench.preprocess import regions

__all__ = ["arrange", "code_digest", "image_paths"]


def arrange(image: np.ndarray) -> np.ndarray:
    """One (F, F, C) image -> (F, F, C): the release's four blocks around its fixed points, tiled 2x2."""
    return regions.tile_regions(image, regions.fallback(image.shape[0]))


def code_digest() -> str:
    """This module's, the tiling's (regions.py) and the image naming's (data/sources/causalnet.py) source: a change
    to any of them recomputes the `causal` inputs (part of their cache key, preprocess/kinds.py)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in ("preprocess/causal.py", "preprocess/regions.py", "data/sources/causalnet.py"):
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]
