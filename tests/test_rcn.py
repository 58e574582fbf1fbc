"""The RCNs as released (baselines/rcn.py; xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec, MeNets.py): their
sizes counted from the release's layer shapes, their weights' names, the attention, and the input as the release's
loader reads a flow file. Where the release's MeNets.py is at hand (a checkout beside this repository, or
HSTA_BENCH_RCN_RELEASE naming one), each model is also compared with the release's own, built from that file."""

from __future__ import annotations

import functools
import os
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hsta_bench import config
from hsta_bench.models import count_parameters, create_model
from hsta_bench.models.inputs import encoding_of, preprocess_settings, to_tensor


def test_rcn_a_has_the_parameters_of_the_releases_layers():
    """MeNets.py's RCN_A as ModelTrain_Final.py:162 builds it with the README's command: 3 input channels,
    featuremaps 32, num_layers 1, pool_size 5, 3 classes; every convolution with a bias, every batch norm
    affine (weight and bias)."""
    inputs, maps, pool, classes = 3, 32, 5, 3
    conv1 = inputs * maps * 5 * 5 + maps  # Conv2d(3, 32, kernel 5) (MeNets.py:214)
    bn1 = 2 * maps  # BatchNorm2d(32) (:215)
    ffconv = maps * maps * 1 * 1 + maps + 2 * maps  # RclBlock: Conv2d(32, 32, kernel 1) + BatchNorm2d(32) (:28-29)
    rrconv = maps * maps * 3 * 3 + maps + 2 * maps  # Conv2d(32, 32, kernel 3), used twice, + BatchNorm2d(32) (:33-34)
    classifier = pool * pool * maps * classes + classes  # Linear(5 * 5 * 32, 3) (:224); the attention has none
    assert (conv1, bn1, ffconv, rrconv, classifier) == (2_432, 64, 1_120, 9_312, 2_403)
    model = create_model("rcn_a", classes)
    assert count_parameters(model) == conv1 + bn1 + ffconv + rrconv + classifier == 15_331
    assert model.inputs == {"flow": (3, 28, 28)} and model.classifier.in_features == 800


def test_rcn_a_names_its_weights_as_the_release():
    """The release's state-dict keys (MeNets.py: conv1, rcls of RclBlocks, classifier), so its weights load."""
    keys = list(create_model("rcn_a", 3).state_dict())
    convs = ["conv1.0", "rcls.0.ffconv.0", "rcls.0.rrconv.0"]
    norms = ["conv1.1", "rcls.0.ffconv.1", "rcls.0.rrconv.1"]
    expected = {f"{c}.{p}" for c in convs for p in ("weight", "bias")}
    expected |= {f"{n}.{p}" for n in norms for p in ("weight", "bias", "running_mean", "running_var")}
    expected |= {f"{n}.num_batches_tracked" for n in norms} | {"classifier.weight", "classifier.bias"}
    assert set(keys) == expected


# The layers the variants are made of, counted from their shapes in MeNets.py as ModelTrain_Final.py:161-172
# builds them (the README's command: 3 input channels, featuremaps 32, pool_size 5, num_layers 1, 3 classes).
def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout  # every convolution has a bias


def bn(c: int) -> int:
    return 2 * c  # affine: weight and bias


STEM = conv(3, 32, 5) + bn(32)  # RCN-A's and RCN-S's conv1 (MeNets.py:214-215, 263-264)
RCL = conv(32, 32, 1) + bn(32) + conv(32, 32, 3) + bn(32)  # RclBlock: ffconv, rrconv (:28-29, 33-34)
DENSE = conv(32, 32, 1) + bn(32) + 2 * (conv(32, 32, 3) + bn(32))  # DenseBlock: conv1, conv2, conv3 (:54-65)
EMBEDDING = conv(32, 32, 1) + bn(32) + conv(32, 32, 3) + bn(32)  # EmbeddingBlock: conv1, conv2 (:87-93)
# RCN-W's streams (:295-318; RCN-C's :414-434 and RCN-F's :490-510 are the same): 3x3 convolutions to
# featuremaps / 2 = 16 and featuremaps / 4 = 8 (twice) channels, each with a batch norm
STREAMS = conv(3, 16, 3) + bn(16) + 2 * (conv(3, 8, 3) + bn(8))
PAIR = 2 * (conv(3, 16, 3) + bn(16))  # RCN-P's two streams, 3x3 to 16 channels each (:349-363)
CLASSIFIER = 5 * 5 * 32 * 3 + 3  # Linear(5 * 5 * 32, 3), every variant's (:224, 271, 321, 369, 441, 513)
UNUSED_CONV3 = conv(32, 32, 3) + bn(32)  # the dense block's conv3, never called (:63-67 built, :73-80 forward)

# name: (parameters from the shapes above, the same written out, those the forward never reaches)
SIZES = {
    "rcn_a": (STEM + RCL + CLASSIFIER, 15_331, 0),  # :213-224
    "rcn_s": (STEM + DENSE + CLASSIFIER, 24_643, UNUSED_CONV3),  # :262-271
    "rcn_w": (STREAMS + RCL + CLASSIFIER, 13_795, 0),  # :296-321
    "rcn_p": (PAIR + DENSE + RCL + CLASSIFIER, 33_539, UNUSED_CONV3 + RCL),  # :350-369; rcls never called (:380-390)
    "rcn_c": (STREAMS + DENSE + EMBEDDING + CLASSIFIER, 33_539, UNUSED_CONV3 + EMBEDDING),  # :414-441; ebl: :462
    "rcn_f": (STREAMS + EMBEDDING + CLASSIFIER, 13_795, conv(3, 8, 3) + bn(8)),  # :490-513; stream3 never called
}
VARIANTS = list(SIZES)


def test_the_layers_are_counted_from_the_releases_shapes():
    assert (STEM, RCL, DENSE, EMBEDDING, STREAMS, PAIR, CLASSIFIER) == (
        2_496,
        10_432,
        19_744,
        10_432,
        960,
        960,
        2_403,
    )


@pytest.mark.parametrize("name", VARIANTS)
def test_every_rcn_has_the_parameters_of_the_releases_layers(name):
    counted, written, _ = SIZES[name]
    with torch.device("meta"):  # shapes only
        model = create_model(name, 3)
    assert count_parameters(model) == counted == written
    assert model.inputs == {"flow": (3, 28, 28)} and model.classifier.in_features == 800
    assert encoding_of(model) == {"flow": "default"}  # every variant is read as RCN-A (Datasets.py:49)


def _conv_bn(prefix: str, norm: int = 1) -> tuple[str, str]:
    return f"{prefix}.0", f"{prefix}.{norm}"  # (convolution, batch norm) inside one of the release's Sequentials


def _streams(n: int) -> list[tuple[str, str]]:
    return [_conv_bn(f"stream{i}", norm=2) for i in range(1, n + 1)]  # Conv2d, ReLU, BatchNorm2d, ... (:296-318)


RCL_KEYS = [_conv_bn("rcls.0.ffconv"), _conv_bn("rcls.0.rrconv")]
DENSE_KEYS = [_conv_bn(f"dbl.0.conv{i}") for i in (1, 2, 3)]
EMBEDDING_KEYS = [_conv_bn("ebl.conv1"), _conv_bn("ebl.conv2")]  # not in a Sequential: ebl.conv1.0.weight
# the (convolution, batch norm) modules of each, named as in the release's state dicts
LAYOUTS = {
    "rcn_a": [_conv_bn("conv1"), *RCL_KEYS],
    "rcn_s": [_conv_bn("conv1"), *DENSE_KEYS],
    "rcn_w": [*_streams(3), *RCL_KEYS],
    "rcn_p": [*_streams(2), *DENSE_KEYS, *RCL_KEYS],
    "rcn_c": [*_streams(3), *DENSE_KEYS, *EMBEDDING_KEYS],
    "rcn_f": [*_streams(3), *EMBEDDING_KEYS],
}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_rcn_names_its_weights_as_the_release(name):
    with torch.device("meta"):
        keys = set(create_model(name, 3).state_dict())
    expected = {"classifier.weight", "classifier.bias"}
    for c, n in LAYOUTS[name]:
        expected |= {f"{c}.weight", f"{c}.bias"}
        expected |= {f"{n}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert keys == expected


@pytest.mark.parametrize("name", VARIANTS)
def test_every_rcn_gives_logits_and_its_unused_modules_no_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, 3)
    logits = model({"flow": torch.rand(4, 3, 28, 28)})
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    idle = [p for p in model.parameters() if p.grad is None]
    assert sum(p.numel() for p in idle) == SIZES[name][2]  # what the release's forward never calls, no more
    declared = [p for n, p in model.named_parameters() if any(fnmatch(n, u) for u in type(model).unused_parameters)]
    assert {id(p) for p in idle} == {id(p) for p in declared}
    assert model.eval()({"flow": torch.zeros(2, 3, 28, 28)}).isfinite().all()  # a flat input: no 0 / 0


def _release_menets() -> Path:
    """MeNets.py of a checkout of the release beside this repository's, or of the one HSTA_BENCH_RCN_RELEASE names."""
    beside = Path(__file__).resolve().parents[2] / "ParameterFreeRCNs-MicroExpressionRec"
    return Path(os.environ.get("HSTA_BENCH_RCN_RELEASE") or beside) / "MeNets.py"


@functools.cache
def _release_classes() -> dict:
    """MeNets.py run as it is, but for the two constructors' `super()` names that fail there, corrected as ours."""
    source = _release_menets().read_text()
    for wrong, right in (("RCN_H", "RCN_P"), ("RCN_E", "RCN_F")):  # MeNets.py:347, 472
        source = source.replace(f"super({wrong}, self)", f"super({right}, self)")
    namespace: dict = {}
    exec(compile(source, str(_release_menets()), "exec"), namespace)  # the authors' file, for comparison
    return namespace


@pytest.mark.skipif(not _release_menets().is_file(), reason=f"the release's MeNets.py is not at {_release_menets()}")
@pytest.mark.parametrize("name", VARIANTS)
def test_every_rcn_is_the_releases_model(name):
    """The release's class and ours, built from the same seed as ModelTrain_Final.py:162-172 builds it: the same
    initial weights under the same names, the same logits in training (dropout drawn in the same order) and in
    evaluation."""
    torch.manual_seed(0)
    theirs = _release_classes()[name.upper()](num_input=3, featuremaps=32, num_classes=3, num_layers=1, pool_size=5)
    torch.manual_seed(0)
    ours = create_model(name, 3)
    expected = theirs.state_dict()
    assert list(ours.state_dict()) == list(expected)
    assert all(torch.equal(v, expected[k]) for k, v in ours.state_dict().items())
    flow = torch.rand(6, 3, 28, 28)
    for training in (True, False):
        torch.manual_seed(1)
        reference = theirs.train(training)(flow)
        torch.manual_seed(1)
        assert torch.allclose(ours.train(training)({"flow": flow}), reference, atol=1e-5)


def release_attention(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The release's attention (MeNets.py:167-178, SpatialAttentionBlock_P), written out as a loop over classes."""
    maps = []
    for row in weight:
        cam = (row.reshape(features.shape[1:]) * features).mean(dim=1, keepdim=True)
        cam = cam - cam.min(dim=3, keepdim=True)[0].min(dim=2, keepdim=True)[0]
        maps.append(cam / cam.max(dim=3, keepdim=True)[0].max(dim=2, keepdim=True)[0])
    return torch.cat(maps, dim=1).mean(dim=1, keepdim=True)


def test_the_attention_is_the_releases_and_a_flat_map_is_zero():
    from baselines.rcn import class_attention

    torch.manual_seed(0)
    features, weight = torch.rand(4, 32, 5, 5), torch.randn(3, 800)
    ours = class_attention(features, weight)
    assert ours.shape == (4, 1, 5, 5)
    assert torch.allclose(ours, release_attention(features, weight), atol=1e-6)
    assert 0.0 <= ours.min() and ours.max() <= 1.0
    flat = torch.zeros(1, 32, 5, 5)
    assert torch.isnan(release_attention(flat, weight)).all()  # the release: 0 / 0
    assert torch.equal(class_attention(flat, weight), torch.zeros(1, 1, 5, 5))  # ours: 0


def test_the_input_attention_is_the_releases():
    """RCN-C's attention on the input (MeNets.py:186-198, SpatialAttentionBlock_F), written out as a loop over
    classes: each class's weights averaged over their channels, times the input, averaged over its channels."""
    from baselines.rcn import input_attention

    torch.manual_seed(0)
    flow, weight = torch.rand(4, 3, 5, 5), torch.randn(3, 800)
    maps = []
    for row in weight:
        cam = (row.reshape(-1, 5, 5).mean(dim=0, keepdim=True) * flow).mean(dim=1, keepdim=True)
        cam = cam - cam.min(dim=3, keepdim=True)[0].min(dim=2, keepdim=True)[0]
        maps.append(cam / cam.max(dim=3, keepdim=True)[0].max(dim=2, keepdim=True)[0])
    ours = input_attention(flow, weight)
    assert ours.shape == (4, 1, 5, 5)
    assert torch.allclose(ours, torch.cat(maps, dim=1).mean(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(input_attention(torch.zeros(1, 3, 5, 5), weight), torch.zeros(1, 1, 5, 5))  # flat: 0


def pil_to_tensor(path: str) -> torch.Tensor:
    """What the release's loader makes of a flow file (Datasets.py:49, ModelTrain_Final.py:120-122):
    `Image.open(path).convert('RGB')`, then torchvision's ToTensor (H, W, C bytes -> C, H, W floats / 255)."""
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def test_rcn_a_reads_flow_as_its_releases_loader():
    from hsta_bench.preprocess import load_prepared

    with torch.device("meta"):
        model = create_model("rcn_a", 3)
    assert encoding_of(model) == {"flow": "default"}
    prepared = load_prepared("megc2019-flow", config.load(sets=preprocess_settings(model.inputs)))
    paths = prepared.manifest["flow_path"].to_list()[:4]
    ours = to_tensor("flow", prepared.inputs("flow")[:4], "default")
    theirs = torch.stack([pil_to_tensor(p) for p in paths])
    assert ours.shape == theirs.shape == (4, 3, 28, 28)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert 0.0 <= ours.min() and ours.max() <= 1.0 and ours.max() > 0.5  # RGB scaled to 0..1, not raw bytes
    assert not torch.allclose(ours, ours.flip(1))  # and in RGB order, not BGR: the channels differ
