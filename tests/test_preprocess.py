"""Preprocessing: the arrays each input kind gets, flow that measures what it should, and the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import SHARED_FLOW, assert_one_line_error, realdata, run_cli
from hsta_bench import config
from hsta_bench.data import get_source, list_sources, load_manifest
from hsta_bench.data.flowimage import encode, optical_strain
from hsta_bench.errors import UserError
from hsta_bench.preprocess import flow as flow_mod
from hsta_bench.preprocess import load_prepared, prepare
from hsta_bench.preprocess.crop import narrowed, square_box
from hsta_bench.preprocess.kinds import DEFAULTS, KINDS
from hsta_bench.preprocess.sampling import blend_plan, pick, span
from hsta_bench.preprocess.worker import compute

SMALL = ["preprocess.size=32", "preprocess.frames=4", "preprocess.flow.compute_size=48", "preprocess.workers=1"]


def small_cfg(*extra: str, data_roots=()):
    return config.load(sets=[*SMALL, *extra], data_roots=list(data_roots))


@pytest.mark.parametrize("name", list_sources())
def test_every_dataset_prepares_its_input_kinds(name):
    prepared = load_prepared(name, small_cfg())
    expected = DEFAULTS[get_source(name).inputs]
    assert set(prepared.arrays) == set(expected)
    n = prepared.manifest.height
    assert n == load_manifest(name, small_cfg()).usable.height
    shapes = {
        "frames": (4, 32, 32, 3),
        "special": (2, 32, 32, 3),
        "flow": (28, 28, 3),
        "apex": (32, 32, 3),
        "causal": (4, 28, 28, 3),
    }
    for kind in expected:
        batch = prepared.inputs(kind)
        assert batch.dtype == np.uint8 and batch.shape == (n, *shapes[kind])
        # every row was written, none left blank (but a flow from an apex coded at the onset is empty)
        moving = (prepared.manifest["apex"] != prepared.manifest["onset"]).fill_null(True).to_numpy()
        rows = batch.reshape(n, -1)[moving if kind == "flow" else slice(None)]
        assert rows.std(axis=1).min() > 1, kind
    if "flow" in expected:
        flows = prepared.inputs("flow").reshape(n, -1, 3)[moving]
        assert (flows.min(axis=1) == 0).all() and (flows.max(axis=1) == 255).all()  # 0..255 per channel


def textured(size: int = 140, seed: int = 0) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 255, (size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2)
    return np.clip((smooth - smooth.mean()) * 4 + 128, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["tvl1", "dis", "farneback"])
@pytest.mark.parametrize("dx,dy", [(2, 0), (-2, 0), (0, 2), (0, -2)])
def test_flow_of_a_known_shift(method, dx, dy):
    image = textured()
    before = image[6:134, 6:134]
    after = image[6 - dy : 134 - dy, 6 - dx : 134 - dx]  # content moved by (dx, dy)
    flow = flow_mod.compute(before, after, method)[20:-20, 20:-20]
    assert abs(flow[..., 0].mean() - dx) < 0.5 and abs(flow[..., 1].mean() - dy) < 0.5
    strain = optical_strain(flow[..., 0], flow[..., 1])
    assert strain.mean() < 0.05  # a pure translation does not deform


def test_strain_sees_deformation_and_not_translation():
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    assert np.allclose(optical_strain(np.full_like(xx, 2.0), np.full_like(xx, -1.0)), 0)
    stretch = optical_strain(0.1 * xx, np.zeros_like(xx))  # du/dx = 0.1 everywhere
    assert np.allclose(stretch, 0.1, atol=1e-6)


def test_encoded_flow_matches_the_released_format():
    u = np.linspace(-1, 2, 28 * 28, dtype=np.float32).reshape(28, 28)
    image = encode(u, -u)
    assert image.dtype == np.uint8 and image.shape == (28, 28, 3)
    for c in range(3):
        assert image[..., c].min() == 0 and image[..., c].max() == 255
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255 and image[0, 0, 1] == 255  # u rises, v falls


@realdata
def test_released_flow_images_are_scaled_per_channel_like_ours():
    import cv2

    for path in sorted((SHARED_FLOW / "datasets" / "STSNet_whole_norm_u_v_os").glob("*.png"))[:60]:
        image = cv2.imread(str(path))
        assert image.shape == (28, 28, 3)
        assert (image.reshape(-1, 3).min(0) == 0).all() and (image.reshape(-1, 3).max(0) == 255).all()


def test_frame_sampling():
    assert span([1, 2, 3, 4, 5, 60, 70], 1, 70, 50) == [1, 2, 3, 4, 5]  # offset capped at onset + 50
    assert pick([10, 11, 12], 6) == [10, 11, 12, 12, 12, 12]  # short clips repeat the end frame
    assert pick(list(range(100, 121)), 6) == [100, 104, 108, 112, 116, 120]  # long ones evenly
    plan = blend_plan([10, 11, 12], 5)
    assert plan[0] == (10, 11, 0.0) and plan[-1] == (11, 12, 1.0) and plan[1] == (10, 11, 0.5)


def _frame(sample: dict, number: int, size: int, box=None) -> np.ndarray:
    """Frame `number` of `sample` read here with cv2 (RGB), cropped to `box` (x0, y0, x1, y1), shrunk to `size`."""
    import cv2

    name = dict(zip(sample["frame_numbers"], sample["frame_files"]))[number]
    image = cv2.cvtColor(cv2.imread(str(Path(sample["frame_dir"]) / name)), cv2.COLOR_BGR2RGB)
    if box is not None:
        image = image[box[1] : box[3], box[0] : box[2]]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def test_interpolation_blends_neighbours():
    """Each of the 9 output frames is the blend of the two source frames around its evenly spaced time,
    weighted by its distance to each (computed here from the files); picking the nearest frame fails this."""
    from hsta_bench.preprocess.settings import from_config

    settings = from_config(small_cfg("preprocess.interpolate=true", "preprocess.frames=9"))
    manifest = load_manifest("smic", small_cfg()).usable

    def available_frames(row: dict) -> list[int]:
        return span(row["frame_numbers"], row["onset"], row["offset"], settings.max_span)

    # a clip whose length is not a multiple of 8 frames, so the 9 times fall between source frames
    sample = next(r for r in manifest.iter_rows(named=True) if (len(available_frames(r)) - 1) % 8)
    available = available_frames(sample)
    values, _ = compute({**sample, "face_crop": True}, ["frames"], settings, None)
    blended = 0
    for i, got in enumerate(values["frames"]):
        t = i * (len(available) - 1) / 8  # the i-th of 9 evenly spaced times, in source frames
        a = min(int(t), len(available) - 2)
        w = t - a
        before, after = (_frame(sample, available[j], 32).astype(float) for j in (a, a + 1))
        want = np.rint((1 - w) * before + w * after).astype(np.uint8)
        assert np.array_equal(got, want), i
        blended += 0 < w < 1 and not np.array_equal(want, before) and not np.array_equal(want, after)
    assert blended >= 4  # most frames lie between two source frames and equal neither


def test_second_prepare_computes_nothing_and_a_changed_setting_only_its_kind():
    cfg = small_cfg("preprocess.crop_margin=0.21")  # a setting every kind depends on: all new
    first = prepare("samm", cfg)
    assert set(first.computed) == {"frames", "special", "flow"}
    second = prepare("samm", cfg)
    assert second.computed == [] and [k.path for k in second.kinds] == [k.path for k in first.kinds]
    third = prepare("samm", small_cfg("preprocess.crop_margin=0.21", "preprocess.flow.method=dis"))
    assert third.computed == ["flow"]


def test_workers_do_not_change_the_arrays():
    one = load_prepared("casme2", small_cfg("preprocess.flow.size=24"))
    shutil.rmtree(Path(one.report.kinds[0].path).parents[1] / "casme2")
    two = load_prepared("casme2", small_cfg("preprocess.flow.size=24", "preprocess.workers=2"))
    assert all(not k.cached for k in two.report.kinds)
    for kind in one.arrays:
        assert np.array_equal(one.inputs(kind), two.inputs(kind)), kind


def test_an_undecodable_frame_excludes_its_sample_by_path(standin_copy):
    root = standin_copy("casme2")
    cfg = small_cfg(data_roots=[f"casme2={root}"])
    sample = load_manifest("casme2", cfg).frame.row(0, named=True)
    victim = Path(sample["frame_dir"]) / sample["frame_files"][0]  # the onset frame
    victim.write_bytes(b"\xff\xd8" + b"\x00garbage" * 50 + b"\xff\xd9")  # intact markers, no image
    prepared = load_prepared("casme2", cfg)
    [excluded] = prepared.report.excluded
    assert excluded["where"] == str(victim) and excluded["sample_id"] == sample["sample_id"]
    assert "decoded" in excluded["reason"]
    assert sample["sample_id"] not in set(prepared.manifest["sample_id"])
    meta = json.loads((Path(prepared.report.kinds[0].path) / "meta.json").read_text())
    assert meta["excluded"] == [excluded]


def test_unusable_samples_are_excluded_with_their_reason(standin_copy):
    root = standin_copy("smic")
    cfg = small_cfg(data_roots=[f"smic={root}"])
    sample = load_manifest("smic", cfg).frame.row(0, named=True)
    for frame in Path(sample["frame_dir"]).iterdir():  # SMIC's folder is the sample: empty it
        frame.unlink()
    report = prepare("smic", cfg)
    assert [e["sample_id"] for e in report.excluded] == [sample["sample_id"]]
    assert report.excluded[0]["where"] == sample["frame_dir"] and "no numbered frames" in report.excluded[0]["reason"]


@pytest.mark.parametrize("aspect,box", [(1.0, (10, 20, 60, 70)), (0.8, (15, 20, 55, 70))])
def test_one_crop_box_for_every_frame_of_a_sample(aspect, box):
    """The box is detected once, on the onset frame, and every frame and both special frames are that box of
    their own frame (checked against the files read here); crop_aspect 0.8 keeps the height and 0.8 of it in
    width, about the detected box's centre (the composite's crops: `datasets export`)."""

    class Fixed:
        def __init__(self):
            self.calls = 0

        def box(self, rgb, margin):
            self.calls += 1
            return (10, 20, 60, 70)

    m = load_manifest("samm", config.load())
    sample = {**m.frame.row(0, named=True), "face_crop": False}
    settings = config.load(sets=[*SMALL, f"preprocess.crop_aspect={aspect}"])
    from hsta_bench.preprocess.settings import from_config

    s = from_config(settings)
    detector = Fixed()
    values, note = compute(sample, ["frames", "special"], s, detector)
    assert detector.calls == 1 and note is None  # detected once, on the onset frame
    taken = pick(span(sample["frame_numbers"], sample["onset"], sample["offset"], s.max_span), s.frames)
    assert len(set(taken)) == s.frames  # distinct frames: a crop of the first one alone would not pass
    for got, number in zip(values["frames"], taken):
        assert np.array_equal(got, _frame(sample, number, s.size, box)), number
    for got, number in zip(values["special"], (sample["onset"], sample["apex"])):
        assert np.array_equal(got, _frame(sample, number, s.size, box)), number
    assert square_box((10, 20, 50, 40), 0.1, 100, 200) == (5, 10, 65, 70)
    assert square_box((0, 0, 90, 90), 0.5, 100, 120) == (0, 0, 100, 100)  # kept inside the image
    assert narrowed((0, 0, 30, 100), 0.8) == (0, 0, 30, 100)  # never wider than the box it narrows


def test_haar_without_a_cascade_is_one_line_error(tmp_path):
    import cv2

    if (Path(getattr(cv2.data, "haarcascades", "")) / "haarcascade_frontalface_default.xml").is_file():
        pytest.skip("this OpenCV ships a Haar cascade")
    proc = run_cli("datasets", "prepare", "samm", "--set", "preprocess.face_crop=haar")
    assert_one_line_error(proc, "preprocess.face_crop=haar", "preprocess.cascade")
    assert_one_line_error(
        run_cli("datasets", "prepare", "samm", "--set", f"preprocess.cascade={tmp_path / 'no.xml'}"),
        "preprocess.cascade",
    )


def test_bad_settings_are_one_line_errors():
    assert_one_line_error(run_cli("datasets", "prepare", "smic", "--set", "preprocess.flow.method=magic"), "tvl1")
    assert_one_line_error(run_cli("datasets", "prepare", "smic", "--set", "preprocess.inputs=[frames,smell]"), "smell")
    with pytest.raises(UserError, match="cannot give 'frames'"):
        prepare("megc2019-flow", small_cfg("preprocess.inputs=[frames]"))


def test_prepare_cli_reports_the_cache_hit():
    args = ["datasets", "prepare", "smic", *[a for s in SMALL for a in ("--set", s)], "--json"]
    run_cli(*args)
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert all(v["cached"] for v in report["inputs"].values())
    text = run_cli(*args[:-1])
    assert "cache hit" in text.stdout


def test_kinds_registry_covers_defaults():
    for kinds in DEFAULTS.values():
        assert set(kinds) <= set(KINDS)


def test_grayscale_samm_is_promoted_to_three_equal_channels():
    frames = load_prepared("samm", small_cfg()).inputs("frames")
    assert frames.shape[-1] == 3
    assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 1], frames[..., 2])
    colour = load_prepared("casme2", small_cfg()).inputs("frames")
    assert not np.array_equal(colour[..., 0], colour[..., 2])
