"""TinyFlowNet: a small two-stage CNN on the onset->apex optical-flow image, written as a user of hsta-bench
writes a model of their own (README, "Your own model").

The contract, all of it here:
- a `MERModel` subclass that says which inputs it takes (`inputs`: kind -> per-sample shape, channels
  first) and how it reads them (`encoding`; "default" is 0..1 flow in u, v, strain order);
- `forward(batch)` takes a dict of those inputs (float, batch first) and returns (batch, num_classes) logits;
- a builder decorated with `@register_model` (its function name is the model's name), taking
  `num_classes` and any overrides a recipe's `model:` section or a tune's space may set; `small` are the
  overrides the smoke preset uses to shrink the inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models import MERModel, register_model


class TinyFlowNet(MERModel):
    encoding = {"flow": "default"}  # the suite's default, said out loud: u, v, strain scaled to 0..1

    def __init__(self, num_classes: int = 3, size: int = 28, width: int = 16, dropout: float = 0.3):
        super().__init__()
        self.num_classes = num_classes
        self.inputs = {"flow": (3, size, size)}  # preprocessing makes the flow image at this size
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width, num_classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.features(batch["flow"]))


@register_model(small={"size": 14})
def tiny_flow_net(num_classes: int = 3, **overrides) -> TinyFlowNet:
    return TinyFlowNet(num_classes=num_classes, **overrides)
