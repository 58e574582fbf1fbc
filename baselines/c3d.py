"""C3D, reduced: a small 3D CNN on the video frames (after Tran et al., 2015).

This is not the original C3D (8 convolutions of 64-512 channels and two 4096-unit fully connected
layers, about 78M parameters on 16x112x112 clips): that costs tens of GFLOPs per clip, far beyond the
CPU budget of the test suite and CI (2 cores), and far more than the few hundred training clips of a
micro-expression dataset can fit. We keep C3D's recipe, 3x3x3 convolutions throughout, a first pooling
that is spatial only (1x2x2) so early layers keep the motion, then 2x2x2 pooling, and shrink it: four
blocks of Conv3d (bias-free) + BatchNorm3d + ReLU with 16, 32, 64, 128 channels (C3D's 64-512 divided
by four, one convolution per block), pooling after the first three blocks, then global average pooling
(instead of C3D's large fully connected layers), dropout 0.5 and one linear layer.

Default input: 8 frames of 64x64 ("frames" kind, (3, 8, 64, 64)); 292,467 parameters with 3 classes.
A pooling step halves a dimension only while it is at least 2 long, so shorter or smaller clips work.
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.registry import MERModel, register_model


class C3D(MERModel):
    def __init__(
        self,
        num_classes: int = 3,
        frames: int = 8,
        size: int = 64,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.5,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.inputs = {"frames": (3, frames, size, size)}
        blocks: list[nn.Module] = []
        channels, t, s = 3, frames, size
        for i, width in enumerate(widths):
            blocks += [
                nn.Conv3d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm3d(width),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:  # no pooling after the last block: global pooling follows
                kt = 2 if (i > 0 and t >= 2) else 1  # the first pooling is spatial only, as in C3D
                ks = 2 if s >= 2 else 1
                blocks.append(nn.MaxPool3d((kt, ks, ks)))
                t, s = t // kt, s // ks
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.pool(self.features(batch["frames"])).flatten(1)
        return self.fc(self.dropout(x))


@register_model(small={"frames": 4, "size": 32})
def c3d(num_classes: int = 3, **overrides) -> C3D:
    return C3D(num_classes=num_classes, **overrides)
