"""Synthetic faces with micro-movements: the signal the stand-in datasets carry.

Each subject gets a face of its own (geometry, skin tone, texture, noise). A sample is a local movement
of a few facial regions, characteristic of its emotion, 1-3 px at the apex, rising from the onset and
falling back by the offset. Frames are made by warping the subject's still face with that displacement
field, so texture and features move together and the true flow is known (`displacement`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Landmarks in face coordinates: x right, y down, the face ellipse spanning -1..1 on both axes.
LANDMARKS = {
    "brow_l_out": (-0.55, -0.42),
    "brow_l_in": (-0.18, -0.40),
    "brow_r_in": (0.18, -0.40),
    "brow_r_out": (0.55, -0.42),
    "eye_l": (-0.36, -0.20),
    "eye_r": (0.36, -0.20),
    "nose": (0.0, 0.12),
    "nostril_l": (-0.11, 0.22),
    "nostril_r": (0.11, 0.22),
    "upper_lip": (0.0, 0.44),
    "mouth_l": (-0.30, 0.50),
    "mouth_c": (0.0, 0.50),
    "mouth_r": (0.30, 0.50),
    "lower_lip": (0.0, 0.58),
    "chin": (0.0, 0.78),
}

# Emotion -> {landmark: direction (x, y)}; the apex displacement is amplitude * direction.
MOTIONS: dict[str, dict[str, tuple[float, float]]] = {
    "happiness": {"mouth_l": (-0.7, -0.7), "mouth_r": (0.7, -0.7)},
    "surprise": {"brow_l_in": (0, -1), "brow_l_out": (0, -1), "brow_r_in": (0, -1), "brow_r_out": (0, -1)},
    "disgust": {"nostril_l": (0, -1), "nostril_r": (0, -1), "upper_lip": (0, -0.8)},
    "repression": {"mouth_c": (0, -1), "lower_lip": (0, -1), "chin": (0, -0.6)},
    "sadness": {"brow_l_in": (0.3, -1), "brow_r_in": (-0.3, -1), "mouth_l": (0, 1), "mouth_r": (0, 1)},
    "fear": {"brow_l_in": (0.5, -0.8), "brow_r_in": (-0.5, -0.8), "mouth_l": (-1, 0), "mouth_r": (1, 0)},
    "anger": {"brow_l_in": (0.6, 0.8), "brow_r_in": (-0.6, 0.8)},
    "contempt": {"mouth_r": (0.8, -0.6)},
}
ALIASES = {
    "happy": "happiness",
    "positive": "happiness",
    "sad": "sadness",
    "other": "others",
}
NEGATIVES = ("anger", "disgust", "sadness", "fear")  # SMIC's `negative` folder mixes these


def motion_for(emotion: str, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """The movement of one sample of `emotion` (`others`: a random region, a random direction)."""
    key = ALIASES.get(emotion.strip().casefold(), emotion.strip().casefold())
    if key == "negative":
        key = NEGATIVES[rng.integers(len(NEGATIVES))]
    if key in MOTIONS:
        return MOTIONS[key]
    landmark = list(LANDMARKS)[rng.integers(len(LANDMARKS))]
    angle = rng.uniform(0, 2 * np.pi)
    return {landmark: (float(np.cos(angle)), float(np.sin(angle)))}


@dataclass
class Face:
    """One subject's still face and where its landmarks are, in pixels."""

    image: np.ndarray  # float32, H x W x 3 in BGR order (OpenCV's), 0..255
    points: dict[str, tuple[float, float]]
    radius: float  # landmark influence radius in pixels
    noise: float  # per-frame noise standard deviation


def make_face(size: int, rng: np.random.Generator) -> Face:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = size / 2 + rng.uniform(-0.04, 0.04) * size
    cy = size / 2 + rng.uniform(-0.03, 0.05) * size
    rx = size * rng.uniform(0.33, 0.40)
    ry = size * rng.uniform(0.42, 0.47)
    skin = rng.uniform([90, 110, 150], [180, 200, 235]).astype(np.float32)  # BGR, as OpenCV writes it
    background = rng.uniform(20, 90, size=3).astype(np.float32)

    # Smooth-edged face ellipse over a background, shaded top to bottom.
    dist = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    mask = np.clip((1.08 - dist) / 0.08, 0, 1)[..., None]
    shade = (1.0 - 0.12 * (yy - cy) / ry)[..., None]
    image = background * (1 - mask) + skin * shade * mask

    # Skin texture: smoothed noise, so optical flow has something to track everywhere on the face.
    texture: np.ndarray = rng.normal(0, 1, (size // 2 + 2, size // 2 + 2)).astype(np.float32)
    texture = np.kron(texture, np.ones((2, 2), np.float32))[:size, :size]
    texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1) + np.roll(texture, (1, 1), (0, 1))) / 4
    image += (rng.uniform(6, 12) * texture)[..., None] * mask

    jitter = rng.normal(0, 0.025, (len(LANDMARKS), 2))
    points = {}
    for (name, (fx, fy)), (jx, jy) in zip(LANDMARKS.items(), jitter):
        points[name] = (cx + (fx + jx) * rx, cy + (fy + jy) * ry)

    def blob(x: float, y: float, sx: float, sy: float, depth: float) -> None:
        nonlocal image
        g = np.exp(-(((xx - x) / sx) ** 2 + ((yy - y) / sy) ** 2) / 2)
        image = image - depth * g[..., None]

    s = size / 96.0  # feature sizes scale with the image
    for side in ("l", "r"):
        ex, ey = points[f"eye_{side}"]
        blob(ex, ey, 4.5 * s, 2.2 * s, rng.uniform(90, 130))
        (ox, oy), (ix, iy) = points[f"brow_{side}_out"], points[f"brow_{side}_in"]
        for t in np.linspace(0, 1, 5):
            blob(ox + t * (ix - ox), oy + t * (iy - oy), 2.6 * s, 1.5 * s, rng.uniform(45, 65))
        nx, ny = points[f"nostril_{side}"]
        blob(nx, ny, 1.8 * s, 1.3 * s, 60)
    nx, ny = points["nose"]
    blob(nx, ny, 2.5 * s, 5.0 * s, -18)
    (lx, ly), (_, my), (rx_, ry_) = points["mouth_l"], points["mouth_c"], points["mouth_r"]
    for t in np.linspace(0, 1, 9):
        px = lx + t * (rx_ - lx)
        py = (1 - t) ** 2 * ly + 2 * t * (1 - t) * (my + 1.5 * s) + t**2 * ry_
        blob(px, py, 2.2 * s, 1.4 * s, rng.uniform(55, 75))
    ux, uy = points["upper_lip"]
    blob(ux, uy, 5.0 * s, 1.5 * s, 25)
    return Face(np.clip(image, 0, 255).astype(np.float32), points, radius=5.5 * s, noise=float(rng.uniform(1.5, 4.0)))


def displacement(face: Face, motion: dict[str, tuple[float, float]], amplitude: float) -> np.ndarray:
    """H x W x 2 (dx, dy) displacement at the apex: each moving landmark drags its neighbourhood."""
    size = face.image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((size, size, 2), np.float32)
    for name, (dx, dy) in motion.items():
        px, py = face.points[name]
        w = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * face.radius**2))
        norm = float(np.hypot(dx, dy)) or 1.0
        field[..., 0] += amplitude * dx / norm * w
        field[..., 1] += amplitude * dy / norm * w
    return field


def envelope(t: int, onset: int, apex: int, offset: int) -> float:
    """0 outside onset..offset, rising smoothly to 1 at the apex and falling back to 0 at the offset."""
    if t < onset or t > offset:
        return 0.0
    if t <= apex:
        u = 1.0 if apex == onset else (t - onset) / (apex - onset)
    else:
        u = 1.0 if offset == apex else (offset - t) / (offset - apex)
    return float(u * u * (3 - 2 * u))


def render(face: Face, field: np.ndarray, weight: float, rng: np.random.Generator, gray: bool) -> np.ndarray:
    """One frame: the still face warped by `weight` * `field`, plus sensor noise, as uint8."""
    size = face.image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Backward warp: the pixel at x shows what the still face had at x - d(x) (fine for small d).
    map_x = xx - weight * field[..., 0]
    map_y = yy - weight * field[..., 1]
    frame: np.ndarray = cv2.remap(face.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frame = frame + rng.normal(0, face.noise, frame.shape).astype(np.float32)
    if gray:
        frame = frame.mean(axis=2)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)
