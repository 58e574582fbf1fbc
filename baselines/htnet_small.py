"""htnet_small: our reduced HTNet-style model, NOT the released HTNet (that is `htnet`, baselines/htnet.py).

What it is: a hierarchical transformer over four regions of the 28x28 onset->apex flow image (u, v, strain),
in the spirit of HTNet (Wang et al., 2024). The flow image is cut into 2x2 patch tokens and split into
the quadrants of the image: top-left and top-right (the eyes), bottom-left and bottom-right (the two halves
of the mouth). Three levels of transformer blocks (hsta_bench.models.layers.Block) follow:
1. local: attention among the tokens of each region alone (one set of weights for the four regions, a
   learned position code per region and token);
2. the two eye regions attend together, and the two mouth regions together;
3. all four regions attend together.
Between levels an aggregation step, a 3x3 convolution, LayerNorm and 3x3 max-pooling with stride 2
(applied to each region's token grid), halves each region's side and widens the tokens. The tokens of
the last level are mean-pooled, normalised and classified by one linear layer. Widths 64, 96, 128 with
2, 3, 4 heads (head width 32), two blocks per level: 908,963 parameters with 3 classes. Any flow size that
is a multiple of 2 x patch works (e.g. size=56, patch=4 gives the same token grids).

How it differs from the release (wangzhifengharrison/HTNet, Model.py + main_HTNet.py; `htnet` here):
- input: the whole flow image (the `flow` input kind, scaled 0..1, RGB), its quadrants as the regions;
  the release tiles four 14x14 crops of the flow image centred on MTCNN landmarks (the `regions` kind)
  and feeds them as cv2 reads them (BGR, 0..255);
- tokens: 2x2 patches (7x7 tokens per region) where the release embeds 7x7 patches (a 4x4 grid in all),
  so here attention at every level is over several tokens, whereas in the release's configuration each
  attention sees one token;
- size: widths 64/96/128 and 2 blocks per level (0.9 M parameters) where the release has 256/512/1024 and
  (2, 2, 10) blocks (139.6 M); qkv and LayerNorm as in HSTA's blocks (qkv bias, eps 1e-6, drop path 0.1,
  truncated-normal initialisation) where the release has no qkv bias, eps 1e-5 and torch's default init;
- aggregation works within each region (a region never mixes with its neighbours before the level that
  merges them), the release's on the whole feature map;
- its recipe (configs/models/htnet_small.yaml) is its own. Before this name existed it was registered as
  `htnet`; results in leaderboard/ labelled `htnet` before the release was added are this model's.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from baselines.htnet import Aggregate as MapAggregate
from hsta_bench.models.layers import LN_EPS, Block, init_weights
from hsta_bench.models.registry import MERModel, register_model

REGIONS = 4  # top-left, top-right, bottom-left, bottom-right: consecutive pairs are the eyes, the mouth


class Aggregate(MapAggregate):
    """(B, regions, r*r, dim_in) -> (B, regions, ceil(r/2)**2, dim_out): the release's aggregation step run on
    each region's token grid alone (so a region never mixes with its neighbours before the level that merges
    them), with this model's LayerNorm eps."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__(dim_in, dim_out, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, regions, n, c = x.shape
        side = int(round(n**0.5))
        x = super().forward(x.reshape(b * regions, side, side, c))
        return x.reshape(b, regions, -1, x.shape[-1])


class HTNetSmall(MERModel):
    def __init__(
        self,
        num_classes: int = 3,
        size: int = 28,
        patch: int = 2,
        dims: tuple[int, int, int] = (64, 96, 128),
        heads: tuple[int, int, int] = (2, 3, 4),
        depths: tuple[int, int, int] = (2, 2, 2),
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.1,
        in_channels: int = 3,
    ):
        super().__init__()
        if not len(dims) == len(heads) == len(depths) == 3:
            raise ValueError("htnet_small: dims, heads and depths need one entry per level (regions, pairs, face)")
        if size % (2 * patch):
            raise ValueError(f"htnet_small: flow size {size} is not a multiple of 2 x patch ({2 * patch})")
        self.num_classes = num_classes
        self.inputs = {"flow": (in_channels, size, size)}
        self.embed = nn.Conv2d(in_channels, dims[0], kernel_size=patch, stride=patch)
        sides = [size // patch // 2]
        for _ in range(2):
            sides.append((sides[-1] + 1) // 2)  # 3x3 max-pool, stride 2, padding 1
        self.pos = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, REGIONS, side * side, dim)) for side, dim in zip(sides, dims)]
        )
        rates = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()  # also under a meta default device
        self.levels = nn.ModuleList()
        for level, (dim, head, depth) in enumerate(zip(dims, heads, depths)):
            start = sum(depths[:level])
            self.levels.append(
                nn.ModuleList([Block(dim, head, mlp_ratio, True, drop, rates[start + j]) for j in range(depth)])
            )
        self.aggregate = nn.ModuleList([Aggregate(dims[i], dims[i + 1]) for i in range(2)])
        self.norm = nn.LayerNorm(dims[-1], eps=LN_EPS)
        self.head = nn.Linear(dims[-1], num_classes)
        self.apply(init_weights)
        for pos in self.pos:
            nn.init.trunc_normal_(pos, std=0.02)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embed(batch["flow"])  # (B, C, G, G)
        b, c, g, _ = x.shape
        r = g // 2  # regions = quadrants, ordered top-left, top-right, bottom-left, bottom-right
        x = x.reshape(b, c, 2, r, 2, r).permute(0, 2, 4, 3, 5, 1).reshape(b, REGIONS, r * r, c)
        for level, blocks in enumerate(self.levels):
            if level:
                x = self.aggregate[level - 1](x)
            x = x + self.pos[level].to(x.dtype)
            per_group = 1 << level  # 1 region, then the eye pair and the mouth pair, then all four
            _, _, n, c = x.shape
            x = x.reshape(b * REGIONS // per_group, per_group * n, c)
            for block in cast(nn.ModuleList, blocks):
                x = block(x)
            x = x.reshape(b, REGIONS, n, c)
        return self.head(self.norm(x.mean(dim=(1, 2))))


@register_model
def htnet_small(num_classes: int = 3, **overrides) -> HTNetSmall:
    return HTNetSmall(num_classes=num_classes, **overrides)
