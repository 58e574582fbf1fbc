"""HTNet's region image (the `regions` input kind): four crops of the flow image around facial landmarks, tiled.

As the release makes it (wangzhifengharrison/HTNet, main_HTNet.py):
- landmarks: the apex face image, as cv2.imread reads it (BGR), resized to the flow's size (28) with
  INTER_AREA; MTCNN (facenet-pytorch's weights, largest face first) finds the face and its five points
  (left eye, right eye, nose, left and right mouth corner, each (x, y)); the first face's points are
  used. No face: a fixed set of points (FALLBACK). Every coordinate is clamped to 7..21 and truncated
  to an integer (main_HTNet.py:54-97);
- crops: 14x14 around each point, taken as flow[a - 7:a + 7, b - 7:b + 7] for the point (a, b), i.e. the
  point's x indexes ROWS and its y COLUMNS (main_HTNet.py:112-121; kept, it is the release);
- tiling: points 0 and 1 side by side on top, points 3 and 4 side by side below; point 2 (the nose) is not
  used (main_HTNet.py:202-204).
At other flow sizes F (a multiple of 4) everything scales: crops F/2 wide, clamped to F/4..3F/4.

Cropping does not mix channels, so the tiles are cut from the cache's RGB flow image and stored in RGB
like `flow`; the model reads them in the release's BGR order (its `encoding`, hsta_bench/models/inputs.py).
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from hsta_bench.errors import UserError

RELEASE_SIZE = 28
# main_HTNet.py:78-82: the points used when MTCNN finds no face, (x, y) on the 28x28 image
FALLBACK = np.array(
    [
        [9.528073, 11.062551],
        [21.396168, 10.919773],
        [15.380184, 17.380562],
        [10.255435, 22.121233],
        [20.583706, 22.25584],
    ]
)
TILES = ((0, 1), (3, 4))  # rows of the tiled image: which landmarks' crops, left to right


def detector_name() -> str:
    """The landmark detector, as it enters the cache key (its weights come with facenet-pytorch)."""
    try:
        version = metadata.version("facenet-pytorch")
    except metadata.PackageNotFoundError:
        version = "absent"
    return f"mtcnn (facenet-pytorch {version} weights, select_largest)"


def code_digest() -> str:
    """This module's and the detector module's source, so that a change to either recomputes regions."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("regions.py", "mtcnn.py"):
        path = here / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:16]


def clamp(points: np.ndarray, size: int = RELEASE_SIZE) -> np.ndarray:
    """(5, 2) float points -> int, each coordinate clamped to size/4..3size/4 first, then truncated."""
    quarter = size // 4
    return np.clip(np.asarray(points, dtype=np.float64), quarter, size - quarter).astype(int)


def fallback(size: int = RELEASE_SIZE) -> np.ndarray:
    """The release's no-face points, clamped (scaled from 28 px to `size`)."""
    return clamp(FALLBACK * (size / RELEASE_SIZE), size)


def _detect(face_bgr: np.ndarray):
    """MTCNN on the image as given (hsta_bench.preprocess.mtcnn); a missing detector is one line."""
    try:
        from hsta_bench.preprocess import mtcnn  # noqa: PLC0415 - probed: a missing detector is one line
    except ImportError as exc:
        raise UserError(
            f"preprocess: the regions input needs the MTCNN landmark detector "
            f"(hsta_bench.preprocess.mtcnn), which cannot be imported: {exc}"
        ) from None
    return mtcnn.detect(face_bgr, select_largest=True)


def find_landmarks(apex_bgr: np.ndarray, size: int = RELEASE_SIZE) -> tuple[np.ndarray, bool]:
    """The five clamped integer points for an apex face image (BGR, any size), and whether the release's
    fallback points stand in (no face found)."""
    face = cv2.resize(apex_bgr, (size, size), interpolation=cv2.INTER_AREA)
    found = _detect(face)
    if found is None or found.landmarks is None or len(found.landmarks) == 0:
        return fallback(size), True
    return clamp(np.asarray(found.landmarks)[0], size), False


def landmarks_for(apex_bgr: np.ndarray, size: int = RELEASE_SIZE) -> np.ndarray:
    """(5, 2) int: the points the release crops around (see find_landmarks)."""
    return find_landmarks(apex_bgr, size)[0]


def tile_regions(flow: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(F, F, C) flow image and (5, 2) clamped int points -> (F, F, C): the release's tiled crops."""
    size = flow.shape[0]
    if flow.shape[1] != size or size % 4:
        raise ValueError(f"regions: the flow image must be square with a side divisible by 4, not {flow.shape}")
    half = size // 4
    points = np.asarray(landmarks, dtype=int)
    if points.shape != (5, 2) or points.min() < half or points.max() > size - half:
        raise ValueError(f"regions: expected 5 points clamped to {half}..{size - half}, got {points.tolist()}")

    def crop(i: int) -> np.ndarray:
        a, b = points[i]
        return flow[a - half : a + half, b - half : b + half]  # x indexes rows, y columns, as released

    return np.concatenate([np.concatenate([crop(i) for i in row], axis=1) for row in TILES], axis=0)


def regions_image(flow_rgb: np.ndarray, apex_bgr: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """A sample's region image from its flow image (cache's RGB order) and its apex face (BGR), and whether
    the fallback points were used (also when there is no apex image)."""
    size = flow_rgb.shape[0]
    if apex_bgr is None:
        points, used_fallback = fallback(size), True
    else:
        points, used_fallback = find_landmarks(apex_bgr, size)
    return tile_regions(flow_rgb, points), used_fallback
