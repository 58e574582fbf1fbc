"""The per-sample work of `prepare`, run in worker processes.

A worker gets a chunk of samples (plain dicts, no DataFrames), computes each requested input kind and
writes it straight into the cache's memory-mapped arrays at the sample's row, so nothing large travels
between processes. A frame that cannot be decoded excludes its sample, with the file and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hsta_bench.preprocess import causal as causal_mod
from hsta_bench.preprocess import flow as flow_mod
from hsta_bench.preprocess import regions as regions_mod
from hsta_bench.preprocess.crop import Detector, narrowed
from hsta_bench.preprocess.sampling import blend_plan, pick, span
from hsta_bench.preprocess.settings import PreprocessSettings


class SampleError(Exception):
    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


@dataclass
class Job:
    rows: list[tuple[int, dict]]  # (row in the arrays, sample as a manifest row)
    arrays: dict[str, str]  # kind -> .npy file to write into
    settings: PreprocessSettings
    detector: Detector | None  # crop faces (of samples that are not face crops already) with it; None: no crops


@dataclass
class Outcome:
    row: int
    sample_id: str
    where: str | None = None  # set when the sample was excluded
    reason: str | None = None
    note: str | None = None  # e.g. no face found: whole frame used
    fallback_landmarks: bool = False  # regions: MTCNN found no face (or no apex image): the release's fixed points


def read_rgb(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)  # grayscale files (SAMM) come back as 3 equal channels
    if image is None:
        raise SampleError(path, "cannot be decoded as an image" if Path(path).is_file() else "file not found")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def fit(image: np.ndarray, size: int) -> np.ndarray:
    shrink = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class Clip:
    """One video sample's frames, read once, cropped with one box."""

    def __init__(self, sample: dict, detector, margin: float, aspect: float = 1.0):
        self.sample = sample
        self.files = dict(zip(sample["frame_numbers"], sample["frame_files"]))
        self._cache: dict[int, np.ndarray] = {}
        self.box = None
        self.note = None
        if detector is not None:
            self.box = detector.box(self._read(sample["onset"]), margin)
            if self.box is None:
                self.note = "no face found on the onset frame: whole frames used"
        if aspect < 1 and self.box is not None:  # a detected face: narrower than tall, about its centre
            self.box = narrowed(self.box, aspect)

    def _read(self, number: int) -> np.ndarray:
        if number not in self._cache:
            self._cache[number] = read_rgb(str(Path(self.sample["frame_dir"]) / self.files[number]))
        return self._cache[number]

    def frame(self, number: int) -> np.ndarray:
        image = self._read(number)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            image = image[y0:y1, x0:x1]
        return image


def compute(
    sample: dict, kinds: list[str], s: PreprocessSettings, detector, flags: dict | None = None
) -> tuple[dict[str, np.ndarray], str | None]:
    """The requested input arrays of one sample (and a note worth reporting, if any); `flags` gets
    `fallback_landmarks` when regions are made."""
    flags = {} if flags is None else flags
    out: dict[str, np.ndarray] = {}
    if sample["frame_dir"] is None:  # precomputed flow dataset
        if "flow" in kinds:
            image = read_rgb(sample["flow_path"])
            out["flow"] = fit(image, s.flow.size) if image.shape[0] != s.flow.size else image
        if "apex" in kinds:
            if sample["apex_image"] is None:
                raise SampleError(sample["source_file"], "no apex image for this sample")
            out["apex"] = fit(read_rgb(sample["apex_image"]), s.size)
        if "causal" in kinds:  # CausalNet's release: its four images, each cut into blocks and tiled
            out["causal"] = np.stack(
                [
                    causal_mod.arrange(_at(read_rgb(path), s.flow.size))
                    for path in causal_mod.image_paths(sample["flow_path"])
                ]
            )
        if "regions" in kinds:  # the release's: the flow image cropped around landmarks of the apex crop
            if "flow" in out:
                flow = out["flow"]
            else:
                image = read_rgb(sample["flow_path"])
                flow = fit(image, s.flow.size) if image.shape[0] != s.flow.size else image
            apex_bgr = _bgr(read_rgb(sample["apex_image"])) if sample["apex_image"] else None
            out["regions"], flags["fallback_landmarks"] = regions_mod.regions_image(flow, apex_bgr)
            if apex_bgr is None:
                return out, "no apex crop: regions cut around the release's fallback landmarks"
        return out, None

    clip = Clip(
        sample, detector if (detector is not None and not sample["face_crop"]) else None, s.crop_margin, s.crop_aspect
    )
    onset, apex = sample["onset"], sample["apex"]
    if "frames" in kinds:
        available = span(sample["frame_numbers"], onset, sample["offset"], s.max_span)
        if s.interpolate:
            frames = []
            for a, b, w in blend_plan(available, s.frames):
                fa, fb = fit(clip.frame(a), s.size).astype(np.float32), fit(clip.frame(b), s.size).astype(np.float32)
                frames.append(np.rint((1 - w) * fa + w * fb).astype(np.uint8))
        else:
            frames = [fit(clip.frame(n), s.size) for n in pick(available, s.frames)]
        out["frames"] = np.stack(frames)
    if "special" in kinds:
        out["special"] = np.stack([fit(clip.frame(onset), s.size), fit(clip.frame(apex), s.size)])
    if "apex" in kinds:
        out["apex"] = fit(clip.frame(apex), s.size)
    if "flow" in kinds:
        out["flow"] = flow_mod.onset_apex_image(
            clip.frame(onset), clip.frame(apex), s.flow.method, s.flow.compute_size, s.flow.size
        )
    if "regions" in kinds:
        if "flow" in out:
            flow = out["flow"]
        else:
            flow = flow_mod.onset_apex_image(
                clip.frame(onset), clip.frame(apex), s.flow.method, s.flow.compute_size, s.flow.size
            )
        out["regions"], flags["fallback_landmarks"] = regions_mod.regions_image(flow, _bgr(clip.frame(apex)))
    return out, clip.note


def _at(image: np.ndarray, size: int) -> np.ndarray:
    """A precomputed image at the prepared size (unchanged when it is that size already)."""
    return image if image.shape[:2] == (size, size) else fit(image, size)


def _bgr(image: np.ndarray) -> np.ndarray:
    """An RGB image back in cv2.imread's order (what HTNet's release gives its landmark detector)."""
    return np.ascontiguousarray(image[..., ::-1])


def run(job: Job) -> list[Outcome]:
    cv2.setNumThreads(1)  # parallelism is the number of worker processes, nothing hidden inside OpenCV
    detector = None
    if job.detector:
        detector = job.detector.build()
    arrays = {kind: np.load(path, mmap_mode="r+") for kind, path in job.arrays.items()}
    outcomes = []
    for row, sample in job.rows:
        try:
            flags: dict = {}
            values, note = compute(sample, list(arrays), job.settings, detector, flags)
        except SampleError as exc:
            outcomes.append(Outcome(row, sample["sample_id"], exc.where, exc.reason))
            continue
        for kind, value in values.items():
            arrays[kind][row] = value
        outcomes.append(
            Outcome(row, sample["sample_id"], note=note, fallback_landmarks=flags.get("fallback_landmarks", False))
        )
    for array in arrays.values():
        array.flush()
    return outcomes
