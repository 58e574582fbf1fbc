"""Face crops, offline, one box per sample: MTCNN (facenet-pytorch's weights, mtcnn.py) or a Haar cascade on disk.

Nothing is downloaded. The box is detected on the onset frame and applied to every frame of the sample, so the
crop adds no jitter between frames (which optical flow would read as motion). It is squared and widened by a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from hsta_bench.engine.device import torch_threads
from hsta_bench.errors import UserError
from hsta_bench.preprocess import mtcnn  # cheap: it imports torch only to detect, not to look for its weights

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Detector:
    """The face detector preprocessing uses: its name ("mtcnn" or "haar") and, for haar, the cascade file."""

    name: str
    cascade: str | None = None

    def build(self):
        return MtcnnDetector() if self.name == "mtcnn" else FaceDetector(Path(self.cascade))


def choose_detector(face_crop: str, cascade: Path | None) -> Detector | None:
    """The detector `preprocess.face_crop` means on this machine, or None (whole frames).

    auto takes MTCNN when facenet-pytorch's weights are installed, else a Haar cascade when one is on disk;
    mtcnn and haar insist on theirs, with one line saying how to get it.
    """
    found = find_cascade(cascade)  # a configured one must exist, whether or not it is used
    if face_crop == "haar":
        if found is None:
            raise UserError(
                "preprocess.face_crop=haar: no Haar cascade on this machine (OpenCV ships none); "
                "set preprocess.cascade=PATH"
            )
        return Detector("haar", str(found))
    if face_crop == "mtcnn":
        mtcnn.require_weights("preprocess.face_crop=mtcnn")
    if face_crop == "mtcnn" or (face_crop == "auto" and mtcnn.find_weights() is not None):
        return Detector("mtcnn")
    if face_crop == "auto" and found is not None:
        return Detector("haar", str(found))
    return None


def find_cascade(configured: Path | None) -> Path | None:
    """The configured cascade, else the one OpenCV ships (when it ships one), else None."""
    if configured is not None:
        if not Path(configured).is_file():
            raise UserError(f"preprocess.cascade: {configured} is not a file")
        return Path(configured)

    shipped = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or "/nonexistent") / DEFAULT_CASCADE
    return shipped if shipped.is_file() else None


def square_box(box: tuple[int, int, int, int], margin: float, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a square around detection (x, y, w, h) widened by `margin`, kept inside the image."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    side = min(side, height, width)
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, x0 + side, y0 + side


def narrowed(box: tuple[int, int, int, int], aspect: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) keeping the height of `box` and `aspect` x its height in width, about the same centre
    (never wider than `box`)."""
    x0, y0, x1, y1 = box
    width = min(x1 - x0, max(1, int(round((y1 - y0) * aspect))))
    left = x0 + ((x1 - x0) - width) // 2
    return left, y0, left + width, y1


class MtcnnDetector:
    """The crop box of the largest face MTCNN finds (RGB frames, as facenet-pytorch expects)."""

    def __init__(self):
        mtcnn.networks()  # loaded once per worker, before its first sample

    def box(self, rgb: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
        with torch_threads(1):  # parallelism is the number of worker processes; the nets are small
            found = mtcnn.detect(rgb, select_largest=True)
        if found is None:
            return None
        x0, y0, x1, y1 = (float(v) for v in found.boxes[0])  # may reach past the edges: square_box keeps it inside
        h, w = rgb.shape[:2]
        return square_box((round(x0), round(y0), round(x1 - x0), round(y1 - y0)), margin, h, w)


class FaceDetector:
    def __init__(self, cascade: Path):
        self._cv2 = cv2
        self.detector = cv2.CascadeClassifier(str(cascade))
        if self.detector.empty():
            raise UserError(f"preprocess.cascade: {cascade} is not a Haar cascade OpenCV can load")

    def box(self, rgb: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
        """The crop box of the largest face in `rgb`, or None when none is found."""
        cv2 = self._cv2
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        h, w = gray.shape
        faces = self.detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(w // 8, h // 8))
        if len(faces) == 0:
            return None
        largest = max(faces, key=lambda f: f[2] * f[3])
        rect = cast("tuple[int, int, int, int]", tuple(int(v) for v in largest))  # detectMultiScale: x, y, w, h
        return square_box(rect, margin, h, w)
