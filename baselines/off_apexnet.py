"""Off-ApexNet (Gan, Liong, Yau, Huang, Tan, Signal Process. Image Commun. 74 (2019) 129-139; arXiv 1805.08699):
two small CNN streams, one on the horizontal and one on the vertical onset->apex optical flow.

Sources. The paper's body could not be read here, and we found no authors' code (the lab's one release in this
line, github christy1206/STSTNet, holds STSTNet only). What we have is second hand:
[S] the STSTNet paper by the same authors (Liong, Gan, See, Khor, Huang, FG 2019, arXiv 1902.03634; the PDF
    in christy1206/STSTNet), which re-ran Off-ApexNet; [G] the MEGC2019 recognition guideline
    (Facial-Micro-ExpressionGC/MEGC2019, images/MEGC2019 Recognition Challenge.pdf); two reimplementations,
    [T] ECNU-Cross-Innovation-Lab/PRICAI2021-Off-TANet and [M] tvaranka/meb.

Follows the sources:
- Inputs: u and v of the flow between the onset and the apex frame, one per stream; no strain; 28x28
  ([S] Sec. I and Table V: "28 x 28 x 2"). Apex: annotated in CASME II and SAMM, spotted with D&C-RoIs in
  SMIC ([S] Sec. II). Here stream u reads channel 0 of the flow image, stream v channel 1; strain is unused.
- Protocol: the 442-video composite, leave-one-subject-out over 68 subjects, UF1/UAR from counts pooled over
  the folds ([G]; [S] Sec. III). Published there: UF1 0.7196, UAR 0.7096 (SMIC 0.6817/0.6695, CASME II
  0.8764/0.8681, SAMM 0.5409/0.5392) ([S] Table III, row 7).
- Two convolution stages of 6 and 16 channels, each with 2x2 max-pooling, then a 1024-unit fully connected
  layer: both reimplementations ([T] models/off_apexnet.py:8-11,26; [M] meb/models/me_networks.py:152-162,
  which runs one stream over both channels).

Our choices, and what could not be established:
- Scale (`encoding` "default"): each channel is the cached min-max byte image over 255, so 0..1, not signed
  flow, no mean subtraction. How the paper scaled u and v is not established ([T] feeds raw TV-L1 flow,
  data.py:62). Flow method: ours is TV-L1 (configs/preprocess.yaml); the lab names TV-L1 (IPOL) for STSTNet
  (christy1206/STSTNet README.md:11), and the precomputed composite is that lab's release; that the paper
  used it too is likely, not read.
- 3x3 kernels, "same" padding (28 -> 14 -> 7), ReLU after each convolution, dropout 0.5: ours. Kernel size
  is not established ([M] 3x3, padding 1; [T] 5x5, padding 2, and no activation after its convolutions).
- One hidden layer: 1568 -> 1024 (ReLU, dropout) -> classes, depth 4, 1,611,611 parameters at 28x28 with 3
  classes (99.7% in the first fully connected layer). [S] Table V gives Off-ApexNet depth 5 and 2.77 M
  parameters, which fits a second 1024-unit hidden layer as in [T] (1568 -> 1024 -> 1024 -> 3: 2,661,211
  with 3x3 kernels, 2,664,475 with 5x5; [T]'s README: 2.66 M) better than ours; [M] has one. A known
  difference, not yet resolved. `padding=0` builds the "valid" variant (16x5x5 per stream, 825,179).
- The recipe (optimiser, lr, epochs, batch): configs/models/off_apexnet.yaml, with its sources.
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

    def __init__(
        self,
        num_classes: int = 3,
        size: int = 28,
        widths: tuple[int, int] = (6, 16),
        hidden: int = 1024,
        dropout: float = 0.5,
        padding: int = 1,
    ):
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
