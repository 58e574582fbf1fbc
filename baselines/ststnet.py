"""STSTNet (Liong et al., 2019): a shallow triple-stream network on onset->apex flow (u, v, strain).

Layer for layer as published: three parallel 3x3 convolutions (3, 5 and 8 channels, padding 2) on the
28x28x3 flow image, each followed by ReLU, batch norm, 3x3 max-pooling (stride 3, padding 1) and
dropout 0.5; the 16 channels are concatenated, average-pooled by 2 and classified by one linear layer
(400 -> classes): 1,683 parameters for 3 classes. The attribute names follow the published PyTorch
model, so its published weights load with `load_state_dict`.

Fed as released (christy1206/STSTNet, main.py): each flow image read with cv2.imread and put in a tensor as
it is, so the channels in BGR order (strain, v, u of the composite's images) and the raw 0..255 values,
unscaled: `encoding = {"flow": "bgr255"}` (hsta_bench/models/inputs.py). Fed the suite's default (RGB,
0..1) the release's 68 fold weights predict one class; fed this, they reproduce the authors' log.
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.registry import MERModel, register_model


class STSTNet(MERModel):
    fold_batchable = True  # hsta_bench/engine/batched.py
    encoding = {"flow": "bgr255"}  # the release's: cv2.imread's channel order, 0..255 unscaled

    def __init__(self, num_classes: int = 3, in_channels: int = 3, dropout: float = 0.5, size: int = 28):
        super().__init__()
        self.num_classes = num_classes
        self.inputs = {"flow": (in_channels, size, size)}
        self.conv1 = nn.Conv2d(in_channels, 3, kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(in_channels, 5, kernel_size=3, padding=2)
        self.conv3 = nn.Conv2d(in_channels, 8, kernel_size=3, padding=2)
        self.relu = nn.ReLU()
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(3), nn.BatchNorm2d(5), nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(dropout)
        side = ((size + 2 - 3) // 3 + 1) // 2  # conv keeps size+2, max-pool /3, avg-pool /2: 5 at 28
        self.fc = nn.Linear(16 * side * side, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["flow"]
        streams = [
            self.dropout(self.maxpool(bn(self.relu(conv(x)))))
            for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3))
        ]
        x = self.avgpool(torch.cat(streams, dim=1))
        return self.fc(torch.flatten(x, 1))


@register_model
def ststnet(num_classes: int = 3, **overrides) -> STSTNet:
    return STSTNet(num_classes=num_classes, **overrides)
