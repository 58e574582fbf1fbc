"""Dual-Inception as released (baselines/dual_inception.py; xly135846/MEGC2019 at 0637394, Keras): its size counted
from the release's layer shapes, each stream reading one flow component, and its input as the release's loader
(cv2.imread, /255) reads a grey image of that component."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hsta_bench.models import count_parameters, create_model
from hsta_bench.models.inputs import encoding_of, to_tensor


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout  # Keras Conv2D with its default bias


def inception(cin: int, width: int) -> int:
    """dual_inception.py:109-122 (6 filters) and :126-137 (16): four branches, 1x1; 1x1 -> 3x3; 1x1 -> 5x5;
    3x3 max-pool -> 1x1: four 1x1 convolutions from the input, one 3x3 and one 5x5 after theirs."""
    return 4 * conv(cin, width, 1) + conv(width, width, 3) + conv(width, width, 5)


STREAM = inception(3, 6) + inception(24, 16)  # each input's two blocks (inputs_x :109-139, inputs_y :142-167)
DENSE = 2 * 7 * 7 * 64 * 1024 + 1024  # Flatten x2, Concatenate, Dense(1024) (:169-174)
OUT = 1024 * 3 + 3  # Dense(num_class) (:176)


def test_dual_inception_has_the_parameters_of_the_releases_layers():
    assert (inception(3, 6), inception(24, 16), DENSE, OUT) == (1_332, 10_336, 6_423_552, 3_075)
    with torch.device("meta"):
        model = create_model("dual_inception", 3)
    assert count_parameters(model) == 2 * STREAM + DENSE + OUT == 6_449_963
    assert model.inputs == {"flow": (3, 28, 28)} and encoding_of(model) == {"flow": "default"}


def test_each_stream_reads_one_component_as_the_releases_loader_reads_its_grey_image(tmp_path):
    """The release reads `*_x_*` and `*_y_*` images with cv2.imread and divides by 255 (image_process.py:87-90);
    a grey PNG of the composite's u (v) channel read so equals what our stream x (y) gets from the cache."""
    rng = np.random.default_rng(0)
    cached = rng.integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)  # RGB order: u, v, strain
    flow = to_tensor("flow", cached, "default")
    seen: dict[str, torch.Tensor] = {}
    model = create_model("dual_inception", 3)
    for name in ("x", "y"):  # a pre-hook that returns None sees the stream's input and changes nothing
        getattr(model, f"stream_{name}").register_forward_pre_hook(lambda m, a, name=name: seen.update({name: a[0]}))
    model({"flow": flow})
    for name, channel in (("x", 0), ("y", 1)):
        theirs = []
        for i in range(2):
            path = tmp_path / f"s{i}_{name}.png"
            cv2.imwrite(str(path), cached[i, ..., channel])
            theirs.append(cv2.resize(cv2.imread(str(path)), (28, 28)) / 255.0)
        expected = torch.from_numpy(np.stack(theirs)).float().permute(0, 3, 1, 2)
        assert torch.equal(seen[name], expected)


def test_flatten_is_keras_channels_last():
    """Keras's Flatten reads height, width, channel: feature (h, w, c) of a stream is at (h * 7 + w) * 64 + c,
    as in the release's dense layer."""
    torch.manual_seed(0)
    model = create_model("dual_inception", 3).eval()
    stream = model.stream_x
    x = torch.rand(1, 3, 28, 28)
    maps = stream.pool(stream.block2(stream.pool(stream.block1(x))))  # (1, 64, 7, 7)
    flat = stream(x)
    assert flat.shape == (1, 3136)
    h, w, c = 3, 5, 17
    assert flat[0, (h * 7 + w) * 64 + c] == maps[0, c, h, w]


@pytest.mark.parametrize("size", [20, 32])
def test_other_flow_sizes_build_and_give_logits(size):
    model = create_model("dual_inception", 3, size=size)
    assert model({"flow": torch.rand(2, 3, size, size)}).shape == (2, 3)
    with pytest.raises(ValueError, match="divisible by 4"):
        create_model("dual_inception", 3, size=30)
