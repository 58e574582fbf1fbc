"""MTCNN (hsta_bench/preprocess/mtcnn.py) on real faces, and face_crop choosing and using it.

The faces: Grace Hopper's portrait, which matplotlib ships (a dependency), and apex crops of the real
MEGC2019 composite when ../shared/data has it. Fidelity to facenet-pytorch itself is measured outside
the suite (it needs torchvision); these tests check what any correct detector must give.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import SHARED_FLOW, realdata
from hsta_bench import config
from hsta_bench.engine.device import torch_threads
from hsta_bench.errors import UserError
from hsta_bench.preprocess import mtcnn, worker
from hsta_bench.preprocess.crop import Detector, choose_detector
from hsta_bench.preprocess.kinds import KINDS
from hsta_bench.preprocess.pipeline import _face_crops
from hsta_bench.preprocess.settings import from_config
from hsta_bench.preprocess.worker import fit

APEX_CROPS = SHARED_FLOW / "datasets" / "combined_datasets_whole"
# read by eye off the 512 x 600 portrait: left eye, right eye, nose tip, left and right mouth corners
HOPPER_POINTS = np.array([[225, 195], [308, 190], [268, 238], [232, 280], [305, 277]], np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the nets are small: one thread is as fast, and far faster on a machine other work keeps busy
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    import cv2
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"matplotlib's sample portrait is not at {path}")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def assert_face_layout(marks: np.ndarray, box: np.ndarray) -> None:
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = marks
    assert lx < nx < rx and mlx < mrx  # left before right, nose between the eyes
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose above the mouth
    assert box[0] < min(lx, mlx) and max(rx, mrx) < box[2] and box[1] < min(ly, ry) and max(mly, mry) < box[3]


def test_finds_the_face_and_its_five_points(hopper):
    found = mtcnn.detect(hopper)
    assert found is not None and found.boxes.shape == (1, 4) and found.landmarks.shape == (1, 5, 2)
    assert found.boxes.dtype == found.landmarks.dtype == np.float32 and found.probs[0] > 0.99
    x0, y0, x1, y1 = found.boxes[0]
    height, width = hopper.shape[:2]
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert x0 < 265 < x1 and y0 < 235 < y1  # the face centre
    assert_face_layout(found.landmarks[0], found.boxes[0])
    assert np.abs(found.landmarks[0] - HOPPER_POINTS).max() < 15


def test_largest_first_or_most_probable_first(hopper):
    import cv2

    canvas = np.full((320, 520, 3), 128, np.uint8)
    canvas[10:310, 0:256] = cv2.resize(hopper, (256, 300), interpolation=cv2.INTER_AREA)
    canvas[100:250, 330:458] = cv2.resize(hopper, (128, 150), interpolation=cv2.INTER_AREA)
    largest, probable = mtcnn.detect(canvas), mtcnn.detect(canvas, select_largest=False)
    assert len(largest.boxes) == len(probable.boxes) == 2
    areas = (largest.boxes[:, 2] - largest.boxes[:, 0]) * (largest.boxes[:, 3] - largest.boxes[:, 1])
    assert areas[0] > areas[1] and largest.boxes[0, 2] < 300 < largest.boxes[1, 0]
    assert probable.probs[0] >= probable.probs[1]
    assert sorted(map(tuple, probable.boxes.tolist())) == sorted(map(tuple, largest.boxes.tolist()))


@realdata
def test_real_apex_crops_of_each_source():
    import cv2

    for prefix in ("006_", "s01_", "sub01_"):  # SAMM, SMIC, CASME II
        files = sorted(APEX_CROPS.glob(f"{prefix}*.jpg"))
        if not files:
            pytest.skip(f"no apex crops {prefix}* in {APEX_CROPS}")
        image = cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB)
        found = mtcnn.detect(image)
        assert found is not None, files[0]
        x0, y0, x1, y1 = found.boxes[0]  # a tight crop: the box may reach past its edges, its face fills it
        h, w = image.shape[:2]
        assert x0 < w / 2 < x1 and y0 < h / 2 < y1, files[0]
        assert_face_layout(found.landmarks[0], found.boxes[0])


def test_no_face_is_none_and_bad_arrays_are_refused():
    assert mtcnn.detect(np.zeros((120, 160, 3), np.uint8)) is None
    assert mtcnn.detect(np.full((64, 64, 3), 200, np.uint8)) is None
    assert mtcnn.detect(np.zeros((10, 10, 3), np.uint8)) is None  # smaller than the smallest face
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        mtcnn.detect(np.zeros((50, 50), np.uint8))


def test_missing_weights_are_one_line(monkeypatch):
    monkeypatch.setattr(mtcnn, "find_weights", lambda: None)
    mtcnn.networks.cache_clear()
    try:
        with pytest.raises(UserError) as caught:
            mtcnn.detect(np.zeros((64, 64, 3), np.uint8))
    finally:
        mtcnn.networks.cache_clear()  # the next detection loads the installed weights again
    with pytest.raises(UserError) as asked:
        choose_detector("mtcnn", None)
    assert "preprocess.face_crop=mtcnn" in str(asked.value)
    for message in (str(caught.value), str(asked.value)):
        assert "\n" not in message and f"pip install --no-deps {mtcnn.PACKAGE}" in message
    fallback = choose_detector("auto", None)  # auto falls back to a cascade on disk, if any
    assert fallback is None or fallback.name == "haar"


def test_face_crop_chooses_mtcnn_and_says_so(monkeypatch):
    s = from_config(config.load(sets=["preprocess.face_crop=auto"]))
    assert choose_detector("auto", None) == Detector("mtcnn") and choose_detector("none", None) is None
    detector, words = _face_crops(s, "frames", [{"face_crop": False}, {"face_crop": True}])
    assert (
        detector == Detector("mtcnn")
        and words == "faces detected with MTCNN on 1 of 2 samples (the others are face crops already)"
    )
    forced = from_config(config.load(sets=["preprocess.face_crop=mtcnn"]))
    assert _face_crops(forced, "frames", [{"face_crop": True}])[1] == "faces detected with MTCNN on every sample"
    assert _face_crops(forced, "flow", [{"face_crop": True}]) == (None, "precomputed flow and apex crops, as released")
    with_mtcnn = KINDS["apex"].depends_on(s)
    assert with_mtcnn["face_detector"] == "mtcnn"
    monkeypatch.setattr(mtcnn, "find_weights", lambda: None)
    assert KINDS["apex"].depends_on(s) != with_mtcnn  # another detector: another cache entry
    detector, words = _face_crops(s, "frames", [{"face_crop": False}])
    if detector is None:  # OpenCV 5 ships no cascade to fall back on
        assert words.startswith("whole frames: no face detector") and mtcnn.PACKAGE in words


def test_auto_crops_a_video_sample_around_the_face(hopper, tmp_path):
    import cv2

    frame = np.full((360, 480, 3), 128, np.uint8)
    frame[40:340, 180:436] = cv2.resize(hopper, (256, 300), interpolation=cv2.INTER_AREA)
    face_x, face_y = 180 + 265 / 2, 40 + 235 / 2  # the portrait's face centre, halved and moved
    for n in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"img{n}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    sample = {
        "sample_id": "hopper",
        "frame_dir": str(tmp_path),
        "frame_files": [f"img{n}.png" for n in (1, 2, 3)],
        "frame_numbers": [1, 2, 3],
        "onset": 1,
        "apex": 2,
        "offset": 3,
        "face_crop": False,
    }
    s = from_config(config.load(sets=["preprocess.size=32", "preprocess.workers=1", "preprocess.face_crop=auto"]))
    detector = choose_detector(s.face_crop, s.cascade).build()
    x0, y0, x1, y1 = detector.box(frame, s.crop_margin)
    assert x1 - x0 == y1 - y0 and 0 <= x0 and x1 <= 480 and 0 <= y0 and y1 <= 360  # square, inside the frame
    assert x0 < face_x < x1 and y0 < face_y < y1 and 60 < x1 - x0 < 200  # around the face, not the whole frame
    # what a preprocessing worker does with it: the detector travels in the job, is built there, crops every frame
    path = tmp_path / "special.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(1, 2, 32, 32, 3)).flush()
    [outcome] = worker.run(
        worker.Job([(0, sample)], {"special": str(path)}, s, choose_detector(s.face_crop, s.cascade))
    )
    assert outcome.note is None and outcome.reason is None
    special = np.load(path)[0]
    assert np.array_equal(special[0], fit(frame[y0:y1, x0:x1], 32)) and np.array_equal(special[1], special[0])
