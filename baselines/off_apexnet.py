"""Off-ApexNet (Gan, Liong et al., 2019): two small CNN streams on the onset->apex optical flow.

One stream reads the horizontal flow u (channel 0 of the flow image), the other the vertical flow v
(channel 1); the strain channel is not used. Each stream is two LeNet-style stages, a 3x3 convolution
(6, then 16 channels, "same" padding) with ReLU and 2x2 max-pooling, so a 28x28 flow gives 16x7x7 per
stream. The two flattened streams are concatenated and classified by two fully connected layers,
1568 -> 1024 (ReLU, dropout) -> classes.

Sizes: 6 and 16 channels of 3x3 kernels, 2x2 max-pooling and a 1024-unit hidden layer, as the paper
describes them; the padding ("same") and the dropout (0.5) are our choices. We had no parameter count
from the paper to check against. Ours at 28x28 with 3 classes: 1,611,611 parameters, 99.7% of them in
the first fully connected layer (without padding, "valid" convolutions, it would be 16x5x5 per stream
and 825,179 parameters; `padding=0` builds that variant).
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.registry import MERModel, register_model


def _stream(widths: tuple[int, int], padding: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for width in widths:
        layers += [nn.Conv2d(channels, width, kernel_size=3, padding=padding), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*layers)


class OffApexNet(MERModel):
    fold_batchable = True  # hsta_bench/engine/batched.py

    def __init__(self, num_classes: int = 3, size: int = 28, widths: tuple[int, int] = (6, 16),
                 hidden: int = 1024, dropout: float = 0.5, padding: int = 1):
        super().__init__()
        self.num_classes = num_classes
        self.inputs = {"flow": (3, size, size)}  # u, v, strain; strain unused
        self.stream_u = _stream(widths, padding)
        self.stream_v = _stream(widths, padding)
        side = size
        for _ in widths:  # 3x3 convolution, then 2x2 max-pooling (floor)
            side = (side + 2 * padding - 2) // 2
        if side < 1:
            raise ValueError(f"off_apexnet: flow size {size} is too small for {len(widths)} conv+pool stages")
        self.fc1 = nn.Linear(2 * widths[-1] * side * side, hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        flow = batch["flow"]
        u = self.stream_u(flow[:, 0:1]).flatten(1)
        v = self.stream_v(flow[:, 1:2]).flatten(1)
        x = self.dropout(self.relu(self.fc1(torch.cat([u, v], dim=1))))
        return self.fc2(x)


@register_model
def off_apexnet(num_classes: int = 3, **overrides) -> OffApexNet:
    return OffApexNet(num_classes=num_classes, **overrides)
