"""`htnet` as released (wangzhifengharrison/HTNet) and its input, the `regions` kind; `htnet_small` kept apart.

The expectations are written here from the release's source (Model.py, main_HTNet.py; line numbers in the
comments), not from our code: the parameter count from its layer shapes, the tiles from its indexing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hsta_bench import config
from hsta_bench.models import count_parameters, create_model, model_class
from hsta_bench.models.inputs import encoding_of
from hsta_bench.preprocess import regions


def _released_parameter_count(
    image=28, patch=7, dim=256, heads=3, hierarchies=3, repeats=(2, 2, 10), classes=3, mlp=4, channels=3
) -> int:
    """Model.py's HTNet, counted from the shapes of its layers."""
    seq_len = (image // patch // 2 ** (hierarchies - 1)) ** 2  # Model.py:126-129
    widths = [dim * 2**i for i in range(hierarchies)]  # Model.py:131-134
    total = channels * patch * patch * widths[0] + widths[0]  # Model.py:139-142: 1x1 conv of the patches
    for level, (d, repeat) in enumerate(zip(widths, repeats)):
        inner = (d // (heads * 2**level)) * (heads * 2**level)  # Model.py:48-49: dim_head = dim // heads
        block = (
            2 * d  # PreNorm's LayerNorm g, b (Model.py:15-16, 26)
            + d * 3 * inner  # to_qkv, no bias (Model.py:55)
            + inner * d
            + d  # to_out (Model.py:57-58)
            + 2 * d  # PreNorm's LayerNorm
            + d * mlp * d
            + mlp * d
            + mlp * d * d
            + d
        )  # FeedForward's two 1x1 convs (Model.py:36, 39)
        total += seq_len + repeat * block  # pos_emb (Model.py:88)
        if level < hierarchies - 1:  # Aggregate: 3x3 conv, LayerNorm (Model.py:77-82); the last level: Identity
            total += d * widths[level + 1] * 9 + widths[level + 1] + 2 * widths[level + 1]
    return total + 2 * widths[-1] + widths[-1] * classes + classes  # mlp_head: LayerNorm, Linear (Model.py:155-159)


def test_htnet_has_the_released_parameter_count():
    expected = _released_parameter_count()
    assert expected == 139_582_982
    with torch.device("meta"):  # the count needs shapes only
        model = create_model("htnet", 3)
    assert count_parameters(model) == expected
    assert model.inputs == {"regions": (3, 28, 28)}


def test_htnet_forward_and_encodings():
    torch.manual_seed(0)
    model = create_model("htnet", 3).eval()
    with torch.no_grad():
        logits = model({"regions": torch.rand(4, 3, 28, 28) * 255})
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    assert encoding_of(model) == {"regions": "bgr255"}  # the release feeds cv2.imread's BGR, 0..255
    with torch.device("meta"):
        small = create_model("htnet_small", 3)
    assert model_class("htnet_small").__name__ == "HTNetSmall" and count_parameters(small) == 908_963
    assert small.inputs == {"flow": (3, 28, 28)} and encoding_of(small) == {"flow": "default"}


def _coordinate_image(size: int = 28) -> np.ndarray:
    """A flow image whose pixel (r, c) holds (r, c, r + c): each tile shows where it was cut."""
    r, c = np.mgrid[0:size, 0:size]
    return np.stack([r, c, r + c], axis=-1).astype(np.uint8)


def test_tile_regions_cuts_and_tiles_as_released():
    flow = _coordinate_image()
    points = np.array([[8, 12], [20, 9], [15, 15], [11, 21], [19, 18]])  # (x, y) per landmark, clamped already
    tiled = regions.tile_regions(flow, points)
    assert tiled.shape == (28, 28, 3) and tiled.dtype == np.uint8
    # main_HTNet.py:112-121: crop k = flow[p[k][0]-7 : p[k][0]+7, p[k][1]-7 : p[k][1]+7] (x on rows);
    # main_HTNet.py:202-204: hconcat(crop 0, crop 1) over hconcat(crop 3, crop 4); crop 2 (nose) unused
    layout = {(0, 0): 0, (0, 1): 1, (1, 0): 3, (1, 1): 4}
    for (tile_row, tile_col), k in layout.items():
        tile = tiled[14 * tile_row : 14 * tile_row + 14, 14 * tile_col : 14 * tile_col + 14]
        rows, cols = np.mgrid[0:14, 0:14]
        assert (tile[..., 0] == points[k][0] - 7 + rows).all(), (tile_row, tile_col)
        assert (tile[..., 1] == points[k][1] - 7 + cols).all(), (tile_row, tile_col)
    with pytest.raises(ValueError, match="clamped"):
        regions.tile_regions(flow, points + 10)


def test_landmarks_are_clamped_truncated_and_fall_back_as_released(monkeypatch):
    # main_HTNet.py:86-92: each coordinate to 7..21, then astype(int) (truncation)
    raw = np.array([[3.2, 25.0], [7.9, 20.99], [21.4, 6.99], [14.5, 14.999], [-1.0, 30.0]])
    assert regions.clamp(raw).tolist() == [[7, 21], [7, 20], [21, 7], [14, 14], [7, 21]]
    # main_HTNet.py:76-82: no face -> fixed points, clamped the same way
    assert regions.fallback().tolist() == [[9, 11], [21, 10], [15, 17], [10, 21], [20, 21]]

    seen = []
    found = SimpleNamespace(
        boxes=np.zeros((2, 4)), probs=np.ones(2), landmarks=np.array([np.full((5, 2), 10.6), np.full((5, 2), 18.0)])
    )
    monkeypatch.setattr(regions, "_detect", lambda face: seen.append(face) or found)
    apex = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    points, used = regions.find_landmarks(apex)
    assert not used and points.tolist() == [[10, 10]] * 5  # the first (largest) face, truncated
    assert seen[0].shape == (28, 28, 3)  # detected on the apex resized to 28 (main_HTNet.py:69-73)
    import cv2

    assert np.array_equal(seen[0], cv2.resize(apex, (28, 28), interpolation=cv2.INTER_AREA))  # channels as given
    monkeypatch.setattr(regions, "_detect", lambda face: None)
    points, used = regions.find_landmarks(apex)
    assert used and points.tolist() == regions.fallback().tolist()
    assert regions.regions_image(_coordinate_image(), None)[1]  # no apex image: the fallback too


def test_regions_kind_of_the_flow_standin(monkeypatch):
    """`prepare` makes regions from each sample's flow image and apex crop; fallbacks are counted and shown."""
    from hsta_bench.cli.datasets import _render_prepared
    from hsta_bench.preprocess import load_prepared

    calls = []

    def stub(face):  # every other sample "has no face"
        calls.append(face.shape)
        return None if len(calls) % 2 else SimpleNamespace(landmarks=np.full((1, 5, 2), 12.0))

    monkeypatch.setattr(regions, "_detect", stub)
    monkeypatch.setattr(regions, "detector_name", lambda: "stub detector (test)")  # its own cache entry
    cfg = config.load(sets=["preprocess.inputs=[flow,regions]", "preprocess.workers=1"])
    prepared = load_prepared("megc2019-flow", cfg)
    n = prepared.manifest.height
    flow, tiled = prepared.inputs("flow"), prepared.inputs("regions")
    assert tiled.shape == (n, 28, 28, 3) and tiled.dtype == np.uint8 and set(calls) == {(28, 28, 3)}
    landmarks = prepared.report.landmarks
    assert landmarks["samples"] == n and landmarks["fallback"] == len(landmarks["fallback_samples"]) == (n + 1) // 2
    fallback_ids = set(landmarks["fallback_samples"])
    for i, sample_id in enumerate(prepared.manifest["sample_id"]):
        points = regions.fallback() if sample_id in fallback_ids else np.full((5, 2), 12)
        assert np.array_equal(tiled[i], regions.tile_regions(flow[i], points)), sample_id
    # what htnet reads (bgr255) is the release's tensor: tiles cut from cv2.imread's BGR image, unscaled
    import cv2

    from hsta_bench.models.inputs import to_tensor

    points = regions.fallback() if prepared.manifest["sample_id"][0] in fallback_ids else np.full((5, 2), 12)
    release = regions.tile_regions(cv2.imread(prepared.manifest["flow_path"][0]), points)
    assert torch.equal(to_tensor("regions", tiled[:1], "bgr255")[0], torch.from_numpy(release).float().permute(2, 0, 1))
    from hsta_bench.cli import datasets as cli_datasets

    with cli_datasets.out.capture() as captured:
        _render_prepared(prepared.report)
    assert f"fallback landmarks used, in {(n + 1) // 2} of {n} samples" in captured.get()
