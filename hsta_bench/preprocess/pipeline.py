"""`prepare`: a dataset's usable samples -> cached arrays of the input kinds models read, in parallel.

Nothing is computed twice: each kind is looked up in the cache first (cache.py) and only the missing
ones are computed, in one pass over the samples. Samples the data layer found unusable, and samples
whose files cannot be decoded, are excluded with the reason recorded in the cache's meta.json.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from hsta_bench.data import get_source, load_manifest
from hsta_bench.data.manifest import ERROR, Manifest
from hsta_bench.errors import UserError
from hsta_bench.preprocess import cache, worker
from hsta_bench.preprocess import kinds as kinds_mod
from hsta_bench.preprocess import settings as settings_mod
from hsta_bench.preprocess.causal import image_paths
from hsta_bench.preprocess.crop import Detector, choose_detector
from hsta_bench.preprocess.mtcnn import PACKAGE as MTCNN_PACKAGE
from hsta_bench.preprocess.sampling import span


@dataclass
class KindReport:
    kind: str
    path: str
    shape: list[int]
    samples: int
    cached: bool  # found in the cache, nothing computed


@dataclass
class PrepareReport:
    dataset: str
    synthetic: bool
    kinds: list[KindReport]
    excluded: list[dict]  # sample_id, where, reason
    notes: list[dict]
    seconds: float
    workers: int
    face_crop: str  # what was done about face crops, in words
    manifest: Manifest | None = field(default=None, repr=False)  # the manifest prepared (not in as_dict)
    landmarks: dict | None = None  # regions: the detector, samples, and those cut around the fallback points

    @property
    def computed(self) -> list[str]:
        return [k.kind for k in self.kinds if not k.cached]

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "synthetic": self.synthetic,
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
            "face_crop": self.face_crop,
            "inputs": {
                k.kind: {"path": k.path, "shape": k.shape, "samples": k.samples, "cached": k.cached} for k in self.kinds
            },
            "excluded": self.excluded,
            "notes": self.notes,
            **({"landmarks": self.landmarks} if self.landmarks else {}),
        }


def _files(sample: dict, s: settings_mod.PreprocessSettings, kinds: tuple[str, ...] = ()) -> list[str]:
    if sample["frame_dir"] is None:
        files = [f for f in (sample["flow_path"], sample["apex_image"]) if f]
        if "causal" in kinds and sample["flow_path"]:  # the three images found from the first one's name
            files += image_paths(sample["flow_path"])[1:]
        return files
    used = set(span(sample["frame_numbers"], sample["onset"], sample["offset"], s.max_span)) | {sample["apex"]}
    return [
        str(Path(sample["frame_dir"]) / f) for n, f in zip(sample["frame_numbers"], sample["frame_files"]) if n in used
    ]


def _unusable(manifest: Manifest) -> list[dict]:
    first: dict[str, dict] = {}
    for p in manifest.problems:
        if p.severity == ERROR and p.sample_id and p.sample_id not in first:
            first[p.sample_id] = {"sample_id": p.sample_id, "where": p.where, "reason": p.message}
    return [
        first.get(sid, {"sample_id": sid, "where": manifest.root, "reason": "unusable"})
        for sid in manifest.frame.filter(~pl.col("usable"))["sample_id"]
    ]


def prepare(name: str, cfg: dict, progress=None, announce=None, manifest: Manifest | None = None) -> PrepareReport:
    """Prepare dataset `name` under `cfg`; `progress(done, total)` is called as samples finish.

    `manifest`: the samples to prepare when not all of the dataset's (the export of a composite made from
    the parts a user holds); the cache tells them apart by their samples' fingerprints."""
    start = time.perf_counter()
    s = settings_mod.from_config(cfg)
    source = get_source(name)
    wanted = kinds_mod.resolve(s.inputs, name, source.inputs)
    manifest = manifest if manifest is not None else load_manifest(name, cfg, announce=announce)
    samples = manifest.usable.to_dicts()
    if not samples:
        raise UserError(f"{name}: no usable samples to prepare (see `hsta-bench datasets check {name}`)")
    code = cache.code_digest()
    prints = [cache.fingerprint(x, _files(x, s, wanted)) for x in samples]
    entries = {
        k: cache.Entry(name, k, cache.key(name, k, kinds_mod.KINDS[k].depends_on(s), code, prints)) for k in wanted
    }
    todo = [k for k in wanted if not entries[k].complete]

    detector, crop_words = _face_crops(s, source.inputs, samples)
    if s.face_crop in ("haar", "mtcnn"):
        samples = [{**x, "face_crop": False} for x in samples]  # detect on every sample, crops included

    excluded = _unusable(manifest)
    notes: list[dict] = []
    if todo:
        stagings = {kind: entries[kind].staging() for kind in todo}
        try:
            outcomes = _compute(stagings, samples, s, detector, progress)
        except BaseException:  # interrupted or failed: leave no half-written folder behind
            for staging in stagings.values():
                shutil.rmtree(staging, ignore_errors=True)
            raise
        excluded += [{"sample_id": o.sample_id, "where": o.where, "reason": o.reason} for o in outcomes if o.reason]
        notes = [{"sample_id": o.sample_id, "note": o.note} for o in outcomes if o.note]
        ok = sorted((o.row, o.sample_id) for o in outcomes if not o.reason)
        index = pl.DataFrame(
            {"sample_id": [sid for _, sid in ok], "row": [r for r, _ in ok]},
            schema={"sample_id": pl.String, "row": pl.Int64},
        )
        for kind in todo:
            staging = stagings[kind]
            index.write_parquet(staging / "index.parquet")
            meta = {
                "dataset": name,
                "kind": kind,
                "key": entries[kind].key,
                "code": code,
                "synthetic": manifest.synthetic,
                "shape": list(kinds_mod.KINDS[kind].shape(s)),
                "dtype": "uint8",
                "rows": len(samples),
                "samples": len(ok),
                "settings": kinds_mod.KINDS[kind].depends_on(s),
                "face_crop": crop_words,
                "excluded": excluded,
                "notes": notes,
                **({"landmarks": _landmarks(outcomes, s)} if kind == "regions" else {}),
                "seconds": round(time.perf_counter() - start, 3),
                "workers": s.workers,
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            entries[kind].publish(staging)
    else:
        excluded = entries[wanted[0]].meta()["excluded"]
    reports = []
    for kind in wanted:
        meta = entries[kind].meta()
        reports.append(KindReport(kind, str(entries[kind].path), meta["shape"], meta["samples"], kind not in todo))
    landmarks = entries["regions"].meta().get("landmarks") if "regions" in wanted else None
    return PrepareReport(
        name,
        manifest.synthetic,
        reports,
        excluded,
        notes,
        time.perf_counter() - start,
        s.workers,
        crop_words,
        manifest,
        landmarks,
    )


def _landmarks(outcomes: list[worker.Outcome], s: settings_mod.PreprocessSettings) -> dict:
    """What the regions' landmarks came from: the detector, and every sample cut around the fallback points."""
    fallback = sorted(o.sample_id for o in outcomes if not o.reason and o.fallback_landmarks)
    return {
        "detector": kinds_mod.regions.detector_name(),
        "at": s.flow.size,
        "samples": sum(1 for o in outcomes if not o.reason),
        "fallback": len(fallback),
        "fallback_samples": fallback,
    }


def _face_crops(s: settings_mod.PreprocessSettings, inputs: str, samples: list[dict]) -> tuple[Detector | None, str]:
    """The face detector to crop with (None: no detection) and what is done about face crops, in words."""
    detector = choose_detector(s.face_crop, s.cascade)  # one asked for by name must be there, needed or not
    if inputs == "flow":
        return None, "precomputed flow and apex crops, as released"
    if inputs != "frames":  # causal: CausalNet's four images per sample
        return None, "precomputed images, as released"
    # haar and mtcnn detect on every sample; auto only where the frames are not face crops already
    todo = len(samples) if s.face_crop in ("haar", "mtcnn") else sum(not x["face_crop"] for x in samples)
    if not todo:
        return None, "frames are face crops already"
    if s.face_crop == "none":
        return None, "whole frames (face_crop=none)"
    if detector is None:
        return None, (
            f"whole frames: no face detector on this machine (`pip install --no-deps {MTCNN_PACKAGE}` "
            "gives MTCNN's weights; or set preprocess.cascade)"
        )
    name = "MTCNN" if detector.name == "mtcnn" else f"the Haar cascade {detector.cascade}"
    where = (
        "every sample"
        if todo == len(samples)
        else f"{todo} of {len(samples)} samples (the others are face crops already)"
    )
    return detector, f"faces detected with {name} on {where}"


def _compute(stagings: dict[str, Path], samples, s, detector, progress) -> list[worker.Outcome]:
    """Fill a data.npy per kind in its staging folder, over `s.workers` processes."""
    arrays = {}
    for kind, staging in stagings.items():
        path = staging / "data.npy"
        np.lib.format.open_memmap(
            path, mode="w+", dtype=np.uint8, shape=(len(samples), *kinds_mod.KINDS[kind].shape(s))
        ).flush()
        arrays[kind] = str(path)
    rows = list(enumerate(samples))
    chunk = max(1, min(16, len(rows) // (s.workers * 6) or 1))
    jobs = [worker.Job(rows[i : i + chunk], arrays, s, detector) for i in range(0, len(rows), chunk)]
    outcomes: list[worker.Outcome] = []
    if s.workers == 1:
        threads = cv2.getNumThreads()
        try:
            for job in jobs:
                outcomes += worker.run(job)
                if progress:
                    progress(len(outcomes), len(rows))
        finally:
            cv2.setNumThreads(threads)
        return outcomes
    # forkserver, not fork: a forked copy of a process whose OpenCV or polars threads hold a lock can
    # hang; the server is a clean process with the worker module preloaded, so workers start fast.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hsta_bench.preprocess.worker"])
    try:
        with ProcessPoolExecutor(max_workers=s.workers, mp_context=context) as pool:
            for result in pool.map(worker.run, jobs):
                outcomes += result
                if progress:
                    progress(len(outcomes), len(rows))
    except BrokenProcessPool:
        raise UserError(
            "preprocessing workers died on start: a script that calls prepare with preprocess.workers > 1 "
            'must run its work under `if __name__ == "__main__":` (or use preprocess.workers=1)'
        ) from None
    return outcomes


@dataclass
class Prepared:
    """Prepared inputs ready for training: the samples (manifest rows) and one array per kind."""

    manifest: pl.DataFrame  # usable, prepared samples; column row_<kind> indexes arrays[kind]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    report: PrepareReport | None = None

    def inputs(self, kind: str, rows: np.ndarray | None = None) -> np.ndarray:
        index = self.manifest[f"row_{kind}"].to_numpy()
        return self.arrays[kind][index if rows is None else index[rows]]


def load_prepared(name: str, cfg: dict, progress=None, announce=None, manifest: Manifest | None = None) -> Prepared:
    """Prepare (a cache hit when done before) and open the arrays read-only, memory-mapped."""
    report = prepare(name, cfg, progress, announce, manifest)
    assert report.manifest is not None  # prepare() always returns the manifest it prepared
    rows = report.manifest.usable
    arrays = {}
    for k in report.kinds:
        index = pl.read_parquet(Path(k.path) / "index.parquet").rename({"row": f"row_{k.kind}"})
        rows = rows.join(index, on="sample_id", how="inner", maintain_order="left")
        arrays[k.kind] = np.load(Path(k.path) / "data.npy", mmap_mode="r")
    return Prepared(rows, arrays, report)
