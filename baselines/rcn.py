"""RCN-A (Xia, Peng, Hong, Zhao, Feng, Zhao, "Revealing the invisible with model and data shrinking for
composite-database micro-expression recognition", IEEE TIP 29, 2020): a shallow recurrent convolutional
network on onset->apex flow, with a parameter-free attention read from its own classifier's weights.

Layer for layer as released (xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec, MeNets.py:206-255, class
RCN_A, built by ModelTrain_Final.py:162 with `model_version` 3, the script's default, :20):
- `conv1`: a 5x5 convolution without padding (3 -> 32 channels), batch norm, ReLU, 2x2 max-pooling, dropout
  0.5: 28x28 -> 24x24 -> 12x12.
- `rcls`: one recurrent convolutional block (MeNets.py:23-47, RclBlock): a feed-forward 1x1 convolution
  (batch norm, ReLU) gives y = ff(x); one 3x3 convolution (batch norm, ReLU), the same weights both times,
  is applied twice, y = rr(x + y), then y = rr(x + y); then 2x2 max-pooling and dropout 0.5: 12x12 -> 6x6.
- an adaptive average pool to pool_size x pool_size (5: 6x6 -> 5x5), weighted by the attention map, then
  one linear layer (32 x 5 x 5 = 800 -> classes).
- The attention (MeNets.py:161-178, SpatialAttentionBlock_P; used at :249): `conv1`'s output, average-pooled
  to 5x5, is multiplied by each class's row of the classifier's weight (reshaped to 32x5x5) and averaged
  over the channels; each class's 5x5 map is min-max scaled to 0..1; the maps are averaged over the
  classes, and the pooled features are multiplied by that one 5x5 map. It has no parameters of its own,
  and gradients flow through it into the classifier's weight and `conv1`, as in the release.
- Initialisation as released: convolution weights Kaiming-normal (fan_out, ReLU; their biases keep
  torch's default), batch norms 1 and 0, the linear layer N(0, 0.01) with zero bias.
15,331 parameters for 3 classes (the arithmetic, layer by layer, is in tests/test_rcn.py). The attribute
names and the nesting follow the release, so its state dicts load with `load_state_dict`.

Fed as released (Datasets.py:49, ModelTrain_Final.py:120-122): each flow image opened with PIL,
`.convert('RGB')`, then `transforms.ToTensor()`: RGB order (u, v, strain of the composite's images),
scaled to 0..1, no resize, no normalisation: the suite's `default` encoding for flow
(hsta_bench/models/inputs.py). The release does not state the size of its flow images; ours are the
composite's 28x28. The recipe (SGD, momentum 0.9, lr 5e-4, batch 64, 20 epochs, cross-entropy, the last
epoch's model, the lr constant: its StepLR is created, ModelTrain_Final.py:32, and never stepped) is
configs/models/rcn_a.yaml, with its sources.

Where ours differs:
- The attention is computed for all classes at once, not in a loop over them (the same numbers, up to the
  order of float sums). Where a class's map is flat (its maximum after subtracting the minimum is 0) the
  release divides 0 by 0 and every logit of that sample is NaN; ours leaves that map at 0.
- Only `model_version` 3 is built: versions 1 and 2 call the attention with one argument where it takes
  three, so they fail in the release (MeNets.py:239, 244).
- Training (engine/train.py): seeded per fold (seed + fold index), the release seeds once (torch.manual_seed(1),
  ModelTrain_Final.py:97); a last batch of one sample joins the one before, where the release's DataLoader
  keeps it alone.
- The README's command (README.md:16) names `ModelEval_Final.py` and a `--dataset` option; the repository
  has ModelTrain_Final.py, which has no such option. We read its command's values as that script's.
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.registry import MERModel, register_model


def class_attention(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One (N, 1, P, P) map from pooled features (N, C, P, P) and a classifier weight (K, C*P*P): each class's
    weights times the features, averaged over channels, min-max scaled per class, averaged over classes."""
    n, c, p, q = features.shape
    per_class = weight.reshape(1, weight.shape[0], c, p, q)
    cams = (per_class * features.unsqueeze(1)).mean(dim=2)  # N, K, P, P
    cams = cams - cams.amin(dim=(-2, -1), keepdim=True)
    top = cams.amax(dim=(-2, -1), keepdim=True)
    cams = cams / torch.where(top > 0, top, torch.ones_like(top))  # a flat map stays 0 (the release: NaN)
    return cams.mean(dim=1, keepdim=True)


class RclBlock(nn.Module):
    """A recurrent convolutional block: y = ff(x), then the same 3x3 convolution twice on x + y, then /2."""

    def __init__(self, channels: int, dropout: float = 0.5):
        super().__init__()
        self.ffconv = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU())
        self.rrconv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.downsample = nn.Sequential(nn.MaxPool2d(2), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ffconv(x)
        for _ in range(2):  # one recurrent convolution, unrolled twice with shared weights
            y = self.rrconv(x + y)
        return self.downsample(y)


class RCN_A(MERModel):  # the release's name
    encoding = {"flow": "default"}  # the release's: PIL RGB + ToTensor, RGB order, 0..1

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
        side = (size - 4) // 2 // 2**num_layers  # 5x5 valid convolution, then /2 per pooling
        if side < 1:
            raise ValueError(
                f"rcn_a: flow size {size} is too small for a 5x5 convolution and {num_layers + 1} poolings"
            )
        self.num_classes = num_classes
        self.inputs = {"flow": (in_channels, size, size)}
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, featuremaps, kernel_size=5),
            nn.BatchNorm2d(featuremaps),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
        )
        self.rcls = nn.Sequential(*(RclBlock(featuremaps, dropout) for _ in range(num_layers)))
        self.downsampling = nn.AdaptiveAvgPool2d(pool_size)  # conv1's output, for the attention
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Linear(featuremaps * pool_size * pool_size, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.conv1(batch["flow"])
        attention = class_attention(self.downsampling(x), self.classifier.weight)
        x = self.avgpool(self.rcls(x)) * attention
        return self.classifier(torch.flatten(x, 1))


@register_model
def rcn_a(num_classes: int = 3, **overrides) -> RCN_A:
    return RCN_A(num_classes=num_classes, **overrides)
