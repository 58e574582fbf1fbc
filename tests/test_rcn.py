"""RCN-A as released (baselines/rcn.py; xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec, MeNets.py): its size
counted from the release's layer shapes, its attention, and its input as the release's loader reads a flow file."""

from __future__ import annotations

import numpy as np
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
