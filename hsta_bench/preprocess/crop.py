"""Face crops, offline: a Haar cascade found on disk (never downloaded), one box per sample.

The box is detected on the onset frame and applied to every frame of the sample, so the crop adds no
jitter between frames (which optical flow would read as motion). It is squared and widened by a margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsta_bench.errors import UserError

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def find_cascade(configured: Path | None) -> Path | None:
    """The configured cascade, else the one OpenCV ships (when it ships one), else None."""
    if configured is not None:
        if not Path(configured).is_file():
            raise UserError(f"preprocess.cascade: {configured} is not a file")
        return Path(configured)
    import cv2

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


class FaceDetector:
    def __init__(self, cascade: Path):
        import cv2

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
        return square_box(tuple(int(v) for v in largest), margin, h, w)
