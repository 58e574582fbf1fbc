"""The RCNs of Xia, Peng, Hong, Zhao, Feng, Zhao, "Revealing the invisible with model and data shrinking for
composite-database micro-expression recognition", IEEE TIP 29, 2020: shallow recurrent convolutional networks
on onset->apex flow, and their variants with parameter-free modules: RCN-A (attention), RCN-S (shortcuts),
RCN-W (wide), and RCN-P, RCN-C and RCN-F (the release's combinations of them: parallel streams with attention
and shortcuts; the attention cascaded onto wide streams; the attention embedded in the block before the classifier).

Layer for layer as released (xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec, MeNets.py; each class's docstring
cites its lines), built as ModelTrain_Final.py:161-172 builds them, all with the same arguments: 3 input channels,
`featuremap` 32 and `poolsize` 5 from the README's command (README.md:16), `num_layers` 1, 3 classes. The class
names, the attribute names and their nesting are the release's, so its state dicts load with `load_state_dict`;
the parameter-free modules of the release (its attention blocks, pooling) hold no weights and are functions here.
The blocks they share:
- `RclBlock` (MeNets.py:23-47): a feed-forward 1x1 convolution (batch norm, ReLU) gives y = ff(x); one 3x3
  convolution (batch norm, ReLU), the same weights both times, is applied twice, y = rr(x + y), then
  y = rr(x + y); then 2x2 max-pooling and dropout 0.5.
- `DenseBlock` (MeNets.py:49-80): a 1x1 convolution `conv1` and 3x3 convolutions `conv2` and `conv3` (each with
  batch norm and ReLU): y = conv1(x), z = conv2(x + y), e = conv2(x + y + z), out = conv2(x + y + z + e) (the
  same `conv2` three times); then 2x2 max-pooling and dropout 0.5. `conv3` is built and initialised but the
  forward (:73-80) never calls it: its weights are in the state dict and get no gradient.
- `EmbeddingBlock` (MeNets.py:82-110): the dense block's `conv1` and `conv2` (no `conv3`), with the class
  attention of its input (below) multiplied into y = conv1(x) (the 5x5 map resized to y's size, nearest),
  then z, e and out as the dense block's, 2x2 max-pooling, dropout 0.5.
- the class attention (MeNets.py:161-178, SpatialAttentionBlock_P; `class_attention`): features average-pooled
  to pool_size x pool_size are multiplied by each class's row of the classifier's weight (reshaped to
  featuremaps x 5 x 5) and averaged over the channels; each class's map is min-max scaled to 0..1; the maps
  are averaged over the classes into one map. It has no parameters of its own, and gradients flow through it
  into the classifier's weight and the features, as in the release.
- the input attention (MeNets.py:180-198, SpatialAttentionBlock_F; `input_attention`, RCN-C's): the same with
  each class's weight averaged over its channels first, so it applies to the (3-channel) input.
- Initialisation as released, in every variant (e.g. MeNets.py:226-234): convolution weights Kaiming-normal
  (fan_out, ReLU; their biases keep torch's default), batch norms 1 and 0, the linear layer N(0, 0.01) with
  zero bias. Our modules are made in the release's order, so one seed gives the release's initial weights.
MeNets.py's ConvBlock, EmbeddingBlock_M and SpatialAttentionBlock_A are used by none of the six.

Fed as released (Datasets.py:49, ModelTrain_Final.py:120-122, the same for every variant): each flow image
opened with PIL, `.convert('RGB')`, then `transforms.ToTensor()`: RGB order (u, v, strain of the composite's
images), scaled to 0..1, no resize, no normalisation: the suite's `default` encoding for flow
(hsta_bench/models/inputs.py). The release does not state the size of its flow images; ours are the
composite's 28x28. The recipe, the same for all six (SGD, momentum 0.9, lr 5e-4, batch 64, 20 epochs,
cross-entropy, the last epoch's model, the lr constant: its StepLR is created, ModelTrain_Final.py:32, and never
stepped) is configs/models/rcn.yaml, with its sources.

Fixed in the release: RCN_P's and RCN_F's constructors call `super()` with class names MeNets.py does not
define (RCN_H, :347; RCN_E, :472), so neither can be built; ours initialise their base class, the only change.

Where ours differs, in every variant:
- The attention is computed for all classes at once, not in a loop over them (the same numbers, up to the
  order of float sums). Where a class's map is flat (its maximum after subtracting the minimum is 0) the
  release divides 0 by 0 and every logit of that sample is NaN; ours leaves that map at 0.
- `dropout` (0.5 everywhere in the release, torch's default) and the flow `size` are settings here.
- Training (engine/train.py): seeded per fold (seed + fold index), the release seeds once (torch.manual_seed(1),
  ModelTrain_Final.py:97); a last batch of one sample joins the one before, where the release's DataLoader
  keeps it alone.
- The README's command (README.md:16) names `ModelEval_Final.py` and a `--dataset` option; the repository
  has ModelTrain_Final.py, which has no such option. We read its command's values as that script's.
- A module the release builds and never calls (RCN-S's `dbl.0.conv3`; more in RCN-P, RCN-C, RCN-F) is built
  here too, for its state dicts and its initialisation; `unused_parameters` names them (tests/test_models.py
  expects no gradient for them). They count in the parameter counts, as in the release's model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hsta_bench.models.registry import MERModel, register_model


def _scaled_mean(cams: torch.Tensor) -> torch.Tensor:
    """(N, K, P, P) class maps, each min-max scaled to 0..1 (a flat map stays 0; the release: NaN), averaged over
    the classes into (N, 1, P, P)."""
    cams = cams - cams.amin(dim=(-2, -1), keepdim=True)
    top = cams.amax(dim=(-2, -1), keepdim=True)
    cams = cams / torch.where(top > 0, top, torch.ones_like(top))
    return cams.mean(dim=1, keepdim=True)


def class_attention(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One (N, 1, P, P) map from pooled features (N, C, P, P) and a classifier weight (K, C*P*P): each class's
    weights times the features, averaged over channels, min-max scaled per class, averaged over classes."""
    n, c, p, q = features.shape
    per_class = weight.reshape(1, weight.shape[0], c, p, q)
    return _scaled_mean((per_class * features.unsqueeze(1)).mean(dim=2))  # N, K, P, P before scaling


def input_attention(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """class_attention for features with fewer channels than the classifier reads (RCN-C's, on the input): each
    class's weights (K, C'*P*P) averaged over their C' channels first, then times the features, averaged over
    the features' channels."""
    p, q = features.shape[-2:]
    per_class = weight.reshape(weight.shape[0], -1, p, q).mean(dim=1)  # K, P, P
    return _scaled_mean(per_class.unsqueeze(0) * features.mean(dim=1, keepdim=True))


def _conv_bn_relu(channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2), nn.BatchNorm2d(channels), nn.ReLU()
    )


def _downsample(dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.MaxPool2d(2), nn.Dropout(dropout))


def _init_as_released(model: nn.Module) -> None:
    """Kaiming-normal convolutions (fan_out, ReLU; biases left at torch's default), batch norms 1 and 0, linear
    layers N(0, 0.01) with zero bias: every RCN's loop over its modules (e.g. MeNets.py:226-234)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class RclBlock(nn.Module):
    """A recurrent convolutional block: y = ff(x), then the same 3x3 convolution twice on x + y, then /2."""

    def __init__(self, channels: int, dropout: float = 0.5):
        super().__init__()
        self.ffconv = _conv_bn_relu(channels, 1)
        self.rrconv = _conv_bn_relu(channels, 3)
        self.downsample = _downsample(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ffconv(x)
        for _ in range(2):  # one recurrent convolution, unrolled twice with shared weights
            y = self.rrconv(x + y)
        return self.downsample(y)


class DenseBlock(nn.Module):
    """A densely connected block: y = conv1(x), then one 3x3 convolution three times on the running sum, then /2.
    `conv3` is the release's, built and never used."""

    def __init__(self, channels: int, dropout: float = 0.5):
        super().__init__()
        self.conv1 = _conv_bn_relu(channels, 1)
        self.conv2 = _conv_bn_relu(channels, 3)
        self.conv3 = _conv_bn_relu(channels, 3)  # unused, as in the release (MeNets.py:63-67, 73-80)
        self.downsample = _downsample(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        z = self.conv2(x + y)
        e = self.conv2(x + y + z)
        return self.downsample(self.conv2(x + y + z + e))


class EmbeddingBlock(nn.Module):
    """The dense block (without `conv3`) with the class attention of its input multiplied into conv1(x)."""

    def __init__(self, channels: int, dropout: float = 0.5):
        super().__init__()
        self.conv1 = _conv_bn_relu(channels, 1)
        self.conv2 = _conv_bn_relu(channels, 3)
        self.downsample = _downsample(dropout)

    def forward(self, x: torch.Tensor, weight: torch.Tensor, pool_size: int) -> torch.Tensor:
        y = self.conv1(x)
        attention = class_attention(F.adaptive_avg_pool2d(x, pool_size), weight)
        y = F.interpolate(attention, size=y.shape[-2:]) * y  # nearest, as the release's F.interpolate
        z = self.conv2(x + y)
        e = self.conv2(x + y + z)
        return self.downsample(self.conv2(x + y + z + e))


def _stream(
    in_channels: int, out_channels: int, dropout: float, dilation: int = 1, stride: int = 3, pool: bool = False
) -> nn.Sequential:
    """One of the wide variants' input streams (e.g. MeNets.py:296-318): a 3x3 convolution (dilated, padded by
    its dilation), ReLU, then batch norm (after the ReLU, as released), [3x3 max-pooling, stride 3,] dropout."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.ReLU(),
        nn.BatchNorm2d(out_channels),
    ]
    if pool:
        layers.append(nn.MaxPool2d(3, stride=3, padding=1))
    return nn.Sequential(*layers, nn.Dropout(dropout))


def _check_streams(name: str, size: int, featuremaps: int, parts: int, blocks: int) -> None:
    """The wide variants' streams: their channels (featuremaps / 2, and / 4 each, or / 2 each) must add up to
    featuremaps, and their maps (stride 3: 28 -> 10) must survive `blocks` 2x2 poolings."""
    if featuremaps % parts:
        raise ValueError(f"{name}: featuremaps {featuremaps} is not a multiple of {parts}: its streams' channels")
    if ((size - 1) // 3 + 1) // 2**blocks < 1:
        raise ValueError(f"{name}: flow size {size} is too small for its streams and {blocks} poolings")


class _RCN(MERModel):
    """What the six share: their input as their loader reads it, the modules their forward skips."""

    encoding = {"flow": "default"}  # the release's: PIL RGB + ToTensor, RGB order, 0..1
    unused_parameters: tuple[str, ...] = ()  # fnmatch patterns: the release's modules that its forward never calls

    # the pieces every constructor shares, called in the release's order of registration (which fixes the order
    # `_init_as_released` draws in, so that one seed gives the release's initial weights)
    def _declare(self, num_classes: int, in_channels: int, size: int) -> None:
        self.num_classes = num_classes
        self.inputs = {"flow": (in_channels, size, size)}

    def _wide_streams(self, in_channels: int, featuremaps: int, dropout: float) -> None:
        """RCN-W's, RCN-C's and RCN-F's streams (MeNets.py:295-318, 414-434, 490-510): to featuremaps / 2, / 4
        dilated by 2, / 4 dilated by 3."""
        self.stream1 = _stream(in_channels, featuremaps // 2, dropout)
        self.stream2 = _stream(in_channels, featuremaps // 4, dropout, dilation=2)
        self.stream3 = _stream(in_channels, featuremaps // 4, dropout, dilation=3)

    def _head(self, featuremaps: int, pool_size: int, num_classes: int) -> None:
        """The adaptive pooling and the linear classifier every variant ends with, then the release's init."""
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Linear(featuremaps * pool_size * pool_size, num_classes)
        _init_as_released(self)


def _stem(in_channels: int, featuremaps: int, dropout: float) -> nn.Sequential:
    """RCN-A's and RCN-S's first layer (MeNets.py:213-219, 262-268): 5x5 convolution without padding, batch norm,
    ReLU, 2x2 max-pooling, dropout (28 -> 24 -> 12)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, featuremaps, kernel_size=5),
        nn.BatchNorm2d(featuremaps),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
    )


def _check_stem(name: str, size: int, num_layers: int) -> None:
    if (size - 4) // 2 // 2**num_layers < 1:  # 5x5 valid convolution, then /2 per pooling
        raise ValueError(f"{name}: flow size {size} is too small for a 5x5 convolution and {num_layers + 1} poolings")


class RCN_A(_RCN):  # the release's name
    """RCN-A (MeNets.py:206-255, class RCN_A, built by ModelTrain_Final.py:162 with `model_version` 3, the
    script's default, :20): the recurrent block with the class attention.
    - `conv1`: a 5x5 convolution without padding (3 -> 32 channels), batch norm, ReLU, 2x2 max-pooling, dropout
      0.5: 28x28 -> 24x24 -> 12x12.
    - `rcls`: one RclBlock (MakeLayer, :200-204, :220): 12x12 -> 6x6.
    - an adaptive average pool to pool_size x pool_size (5: 6x6 -> 5x5), weighted by the attention map, then
      one linear layer (32 x 5 x 5 = 800 -> classes).
    - The class attention (used at :249): `conv1`'s output, average-pooled to 5x5 (`downsampling`), and the
      classifier's weight give one 5x5 map, which multiplies the pooled features.
    15,331 parameters for 3 classes (the arithmetic, layer by layer, is in tests/test_rcn.py).

    Where ours differs: only `model_version` 3 is built: versions 1 and 2 call the attention with one argument
    where it takes three, so they fail in the release (MeNets.py:239, 244).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        featuremaps: int = 32,
        num_layers: int = 1,
        pool_size: int = 5,
        size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        _check_stem("rcn_a", size, num_layers)
        self._declare(num_classes, in_channels, size)
        self.conv1 = _stem(in_channels, featuremaps, dropout)
        self.rcls = nn.Sequential(*(RclBlock(featuremaps, dropout) for _ in range(num_layers)))
        self.downsampling = nn.AdaptiveAvgPool2d(pool_size)  # conv1's output, for the attention
        self._head(featuremaps, pool_size, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.conv1(batch["flow"])
        attention = class_attention(self.downsampling(x), self.classifier.weight)
        x = self.avgpool(self.rcls(x)) * attention
        return self.classifier(torch.flatten(x, 1))


class RCN_S(_RCN):  # the release's name
    """RCN-S (MeNets.py:257-288, class RCN_S, built by ModelTrain_Final.py:164): RCN-A's layers with the dense
    block in place of the recurrent one, and no attention.
    - `conv1`: as RCN-A's (:262-268): 28x28 -> 24x24 -> 12x12.
    - `dbl`: one DenseBlock (:269): 12x12 -> 6x6.
    - an adaptive average pool to 5x5 (:270), then one linear layer (800 -> classes, :271).
    24,643 parameters for 3 classes, of which the dense block's unused `conv3` holds 9,312: 15,331 are trained,
    RCN-A's number.
    """

    unused_parameters = ("dbl.*.conv3.*",)

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        featuremaps: int = 32,
        num_layers: int = 1,
        pool_size: int = 5,
        size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        _check_stem("rcn_s", size, num_layers)
        self._declare(num_classes, in_channels, size)
        self.conv1 = _stem(in_channels, featuremaps, dropout)
        self.dbl = nn.Sequential(*(DenseBlock(featuremaps, dropout) for _ in range(num_layers)))
        self._head(featuremaps, pool_size, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.avgpool(self.dbl(self.conv1(batch["flow"])))
        return self.classifier(torch.flatten(x, 1))


class RCN_W(_RCN):  # the release's name
    """RCN-W (MeNets.py:290-341, class RCN_W, built by ModelTrain_Final.py:166): three parallel input streams in
    place of RCN-A's first layer, then the recurrent block, no attention.
    - `stream1` (:296-302): a 3x3 convolution with stride 3 and padding 1 (3 -> 16 channels: featuremaps / 2,
      :295), ReLU, then batch norm, dropout 0.5: 28x28 -> 10x10. The batch norm comes after the ReLU, in all
      the streams, as released.
    - `stream2` (:303-310): the same with the convolution dilated by 2, padding 2, 3 -> 8 channels (featuremaps
      / 4): 10x10; `stream3` (:311-318): dilated by 3, padding 3, 3 -> 8 channels: 10x10.
    - the streams concatenated (:336): 32 x 10 x 10; `rcls`: one RclBlock (:319): 10x10 -> 5x5.
    - an adaptive average pool to 5x5 (:320; 5x5 already), then one linear layer (800 -> classes, :321).
    13,795 parameters for 3 classes.

    Where ours differs: featuremaps must be a multiple of 4 (where it is not, the release's streams do not add up
    to the featuremaps its block takes, and it fails).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        featuremaps: int = 32,
        num_layers: int = 1,
        pool_size: int = 5,
        size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        _check_streams("rcn_w", size, featuremaps, 4, num_layers)
        self._declare(num_classes, in_channels, size)
        self._wide_streams(in_channels, featuremaps, dropout)
        self.rcls = nn.Sequential(*(RclBlock(featuremaps, dropout) for _ in range(num_layers)))
        self._head(featuremaps, pool_size, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        flow = batch["flow"]
        x = torch.cat((self.stream1(flow), self.stream2(flow), self.stream3(flow)), 1)
        x = self.avgpool(self.rcls(x))
        return self.classifier(torch.flatten(x, 1))


class RCN_P(_RCN):  # the release's name
    """RCN-P (MeNets.py:343-390, class RCN_P, built by ModelTrain_Final.py:168): two parallel streams, the class
    attention, and the dense block.
    - `stream1` (:350-356): a 3x3 convolution with stride 1 and padding 1 (3 -> 16 channels: featuremaps / 2,
      :349), ReLU, batch norm, 3x3 max-pooling with stride 3 and padding 1, dropout 0.5: 28x28 -> 10x10.
    - `stream2` (:357-363): the same with the convolution dilated by 3, padding 3, 3 -> 16 channels: 10x10.
    - the streams concatenated (:383): 32 x 10 x 10; the class attention of that, average-pooled to 5x5
      (`downsampling`, :367, :384), with the classifier's weight: one 5x5 map.
    - `dbl`: one DenseBlock (:364): 10x10 -> 5x5; an adaptive average pool to 5x5 (:368; 5x5 already),
      weighted by the attention map (:387), then one linear layer (800 -> classes, :369).
    - `rcls`: one RclBlock (:365), built and initialised, never called (the forward uses `dbl`).
    33,539 parameters for 3 classes, of which the unused `rcls` holds 10,432 and the dense block's unused
    `conv3` 9,312: 13,795 are trained.

    Fixed: the release's constructor calls `super(RCN_H, self)` (:347), a name MeNets.py does not define, so
    building RCN_P fails with a NameError; ours initialises its base class, the only change.
    Where ours differs: featuremaps must be even (the streams' channels add up to it).
    """

    unused_parameters = ("dbl.*.conv3.*", "rcls.*")

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        featuremaps: int = 32,
        num_layers: int = 1,
        pool_size: int = 5,
        size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        _check_streams("rcn_p", size, featuremaps, 2, num_layers)
        self._declare(num_classes, in_channels, size)
        self.stream1 = _stream(in_channels, featuremaps // 2, dropout, stride=1, pool=True)
        self.stream2 = _stream(in_channels, featuremaps // 2, dropout, dilation=3, stride=1, pool=True)
        self.dbl = nn.Sequential(*(DenseBlock(featuremaps, dropout) for _ in range(num_layers)))
        self.rcls = nn.Sequential(*(RclBlock(featuremaps, dropout) for _ in range(num_layers)))  # unused
        self.downsampling = nn.AdaptiveAvgPool2d(pool_size)  # the streams' output, for the attention
        self._head(featuremaps, pool_size, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        flow = batch["flow"]
        x = torch.cat((self.stream1(flow), self.stream2(flow)), 1)
        attention = class_attention(self.downsampling(x), self.classifier.weight)
        x = self.avgpool(self.dbl(x)) * attention
        return self.classifier(torch.flatten(x, 1))


class RCN_C(_RCN):  # the release's name
    """RCN-C (MeNets.py:392-466, class RCN_C, built by ModelTrain_Final.py:170): RCN-W's three streams, weighted by
    the input attention, then the dense block.
    - the input attention (:438, :453): the input flow average-pooled to 5x5 (`downsampling`, :439), with the
      classifier's weight: one 5x5 map (SpatialAttentionBlock_F: each class's weight averaged over its channels).
    - `stream1`, `stream2`, `stream3` (:414-434): as RCN-W's, 32 x 10 x 10 concatenated (:457), multiplied by
      the attention map resized to 10x10 (nearest: each cell 2x2, :460).
    - `dbl`: one DenseBlock (:435): 10x10 -> 5x5; an adaptive average pool to 5x5 (:440; 5x5 already), then one
      linear layer (800 -> classes, :441).
    - `ebl`: an EmbeddingBlock (:436), built and initialised, never called (its call is commented out, :462).
    33,539 parameters for 3 classes, of which the unused `ebl` holds 10,432 and the dense block's unused `conv3`
    9,312: 13,795 are trained.

    Where ours differs: featuremaps must be a multiple of 4 (RCN-W's streams).
    """

    unused_parameters = ("dbl.*.conv3.*", "ebl.*")

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        featuremaps: int = 32,
        num_layers: int = 1,
        pool_size: int = 5,
        size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        _check_streams("rcn_c", size, featuremaps, 4, num_layers)
        self._declare(num_classes, in_channels, size)
        self._wide_streams(in_channels, featuremaps, dropout)
        self.dbl = nn.Sequential(*(DenseBlock(featuremaps, dropout) for _ in range(num_layers)))
        self.ebl = EmbeddingBlock(featuremaps, dropout)  # unused
        self.downsampling = nn.AdaptiveAvgPool2d(pool_size)  # the input, for the attention
        self._head(featuremaps, pool_size, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        flow = batch["flow"]
        attention = input_attention(self.downsampling(flow), self.classifier.weight)
        x = torch.cat((self.stream1(flow), self.stream2(flow), self.stream3(flow)), 1)
        x = F.interpolate(attention, size=x.shape[-2:]) * x  # nearest, as the release's F.interpolate
        x = self.avgpool(self.dbl(x))
        return self.classifier(torch.flatten(x, 1))


class RCN_F(_RCN):  # the release's name
    """RCN-F (MeNets.py:468-534, class RCN_F, built by ModelTrain_Final.py:172): RCN-W's streams, then the
    embedding block (the class attention inside it).
    - `stream1`, `stream2`, `stream3` (:490-510): as RCN-W's. The forward (:525-529) concatenates `stream1`'s
      output and `stream2`'s twice, `stream3` never called: 16 + 8 + 8 = 32 x 10 x 10, as released (in training
      the two calls of `stream2` drop different units).
    - `ebl`: an EmbeddingBlock (:511, :530): the class attention of its input, average-pooled to 5x5, with the
      classifier's weight, multiplies its 1x1 convolution's output (the map resized to 10x10); then the dense
      steps: 10x10 -> 5x5.
    - an adaptive average pool to 5x5 (:512; 5x5 already), then one linear layer (800 -> classes, :513).
    13,795 parameters for 3 classes, of which the unused `stream3` holds 240: 13,555 are trained.

    Fixed: the release's constructor calls `super(RCN_E, self)` (:472), a name MeNets.py does not define, so
    building RCN_F fails with a NameError; ours initialises its base class, the only change.
    Where ours differs: featuremaps must be a multiple of 4 (RCN-W's streams); no `num_layers` (the release
    takes one and never uses it: its embedding block is one block).
    """

    unused_parameters = ("stream3.*",)

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        featuremaps: int = 32,
        pool_size: int = 5,
        size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        _check_streams("rcn_f", size, featuremaps, 4, 1)
        self._declare(num_classes, in_channels, size)
        self.pool_size = pool_size
        self._wide_streams(in_channels, featuremaps, dropout)  # stream3 unused (forward)
        self.ebl = EmbeddingBlock(featuremaps, dropout)
        self._head(featuremaps, pool_size, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        flow = batch["flow"]
        x = torch.cat((self.stream1(flow), self.stream2(flow), self.stream2(flow)), 1)  # stream2 twice, as released
        x = self.avgpool(self.ebl(x, self.classifier.weight, self.pool_size))
        return self.classifier(torch.flatten(x, 1))


@register_model
def rcn_a(num_classes: int = 3, **overrides) -> RCN_A:
    return RCN_A(num_classes=num_classes, **overrides)


@register_model
def rcn_s(num_classes: int = 3, **overrides) -> RCN_S:
    return RCN_S(num_classes=num_classes, **overrides)


@register_model
def rcn_w(num_classes: int = 3, **overrides) -> RCN_W:
    return RCN_W(num_classes=num_classes, **overrides)


@register_model
def rcn_p(num_classes: int = 3, **overrides) -> RCN_P:
    return RCN_P(num_classes=num_classes, **overrides)


@register_model
def rcn_c(num_classes: int = 3, **overrides) -> RCN_C:
    return RCN_C(num_classes=num_classes, **overrides)


@register_model
def rcn_f(num_classes: int = 3, **overrides) -> RCN_F:
    return RCN_F(num_classes=num_classes, **overrides)
