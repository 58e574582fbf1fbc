"""HTNet as its authors released it (Wang et al., 2024; wangzhifengharrison/HTNet, Model.py and main_HTNet.py).

The input is the release's region image (the `regions` input kind, hsta_bench/preprocess/regions.py): four
14x14 crops of the 28x28 onset->apex flow image, centred on MTCNN landmarks of the apex face, tiled 2x2.
The network, layer for layer as the release builds it with its configuration (main_HTNet.py:222-231:
image 28, patch 7, dim 256, heads 3, three hierarchies, blocks (2, 2, 10), 3 classes):

- patch embedding: each 7x7 patch flattened in (row, column, channel) order, then one linear map
  (the release's 1x1 convolution) to 256 channels: a 4x4 grid of tokens;
- three levels with widths 256, 512, 1024 and 3, 6, 12 heads (the width and the heads double per level).
  At each level the grid is cut into blocks (4x4, then 2x2, then 1 block) and a transformer runs inside
  each block alone: a learned scalar per block position added to every channel, then pre-norm blocks of
  attention and a 4x MLP (GELU), both residual. Attention's head width is width // heads = 85, so q, k
  and v are 255, 510 and 1020 wide (not the width; the release's `dim_head=64` argument is unused), with
  no bias on qkv and a bias on the output projection;
- between levels: a 3x3 convolution to the next width over the whole map, LayerNorm over channels, 3x3
  max-pooling with stride 2 (4x4 -> 2x2 -> 1x1);
- head: LayerNorm, the mean over the map, one linear layer.
LayerNorm everywhere normalises over channels with eps 1e-5; initialisation is torch's default, as in the
release. 139,582,982 parameters with 3 classes (tests/test_htnet_release.py counts them from the release's
layer shapes). The 28/7 geometry makes every block one token wide: each attention in the released
configuration attends over a single token (its softmax is 1, so it passes its values through the output
projection), and tokens meet only through the aggregation convolutions. That is the release; kept as is.

Fed as released: main_HTNet.py reads the images with cv2.imread and makes tensors of them as they are,
BGR and 0..255 unscaled: `encoding = {"regions": "bgr255"}` (hsta_bench/models/inputs.py).

Not reproduced here: the release's per-test-subject choice of the best epoch (it keeps the epoch with the
best accuracy on each test subject, main_HTNet.py:293-301); our recipe (configs/models/htnet.yaml) keeps
the last epoch. Attention-weight dropout (the release's default is no dropout) is not offered.

The reduced model this suite ran under the name `htnet` before is `htnet_small` (baselines/htnet_small.py).
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.attention import AttentionBase, attend
from hsta_bench.models.registry import MERModel, register_model

LN_EPS = 1e-5  # the release's LayerNorm: (x - mean) / sqrt(var + 1e-5), biased variance, over channels


class RegionAttention(AttentionBase):
    """Self-attention whose heads are width // heads wide (so q, k, v may be narrower than the width)."""

    def __init__(self, dim: int, heads: int):
        head_dim = dim // heads
        super().__init__(head_dim * heads, heads, None)
        self.inner = head_dim * heads
        self.qkv = nn.Linear(dim, 3 * self.inner, bias=False)
        self.out = nn.Linear(self.inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.inner // self.heads).permute(2, 0, 3, 1, 4)
        return self.out(self.merge(attend(q, k, v, self.backend)))


class Layer(nn.Module):
    """Pre-norm attention and MLP, each added to its input."""

    def __init__(self, dim: int, heads: int, mlp_mult: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = RegionAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_mult), nn.GELU(), nn.Linear(dim * mlp_mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Level(nn.Module):
    """One hierarchy: the (B, H, W, C) map cut into blocks x blocks windows, a transformer inside each."""

    def __init__(self, dim: int, heads: int, depth: int, tokens: int, blocks: int, mlp_mult: int):
        super().__init__()
        self.blocks = blocks
        self.pos = nn.Parameter(torch.randn(tokens))  # one scalar per position in a block, on every channel
        self.layers = nn.ModuleList([Layer(dim, heads, mlp_mult) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, height, width, c = x.shape
        k = self.blocks
        h, w = height // k, width // k
        x = x.reshape(b, k, h, k, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b * k * k, h * w, c)
        x = x + self.pos[: h * w].to(x.dtype)[None, :, None]
        for layer in self.layers:
            x = layer(x)
        return x.reshape(b, k, k, h, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, height, width, c)


class Aggregate(nn.Module):
    """3x3 convolution to the next width, LayerNorm over channels, 3x3 max-pooling with stride 2."""

    def __init__(self, dim_in: int, dim_out: int, eps: float = LN_EPS):
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(dim_out, eps=eps)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) in and out
        x = self.conv(x.permute(0, 3, 1, 2))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.pool(x).permute(0, 2, 3, 1)


class HTNet(MERModel):
    encoding = {"regions": "bgr255"}  # the release's: cv2.imread's channel order, 0..255 unscaled

    def __init__(
        self,
        num_classes: int = 3,
        size: int = 28,
        patch: int = 7,
        dim: int = 256,
        heads: int = 3,
        levels: int = 3,
        depths: tuple[int, ...] = (2, 2, 10),
        mlp_mult: int = 4,
        in_channels: int = 3,
    ):
        super().__init__()
        depths = tuple(depths) if isinstance(depths, (tuple, list)) else (int(depths),) * levels
        grid = size // patch
        top = 2 ** (levels - 1)  # blocks per side at the first level
        if size % patch or grid % top or len(depths) != levels:
            raise ValueError(
                f"htnet: size {size} must be a multiple of patch {patch}, the {grid}x{grid} patch grid "
                f"divisible into {top}x{top} blocks, and depths one entry per level ({levels})"
            )
        self.num_classes = num_classes
        self.patch = patch
        self.inputs = {"regions": (in_channels, size, size)}
        widths = [dim * 2**i for i in range(levels)]
        tokens = (grid // top) ** 2  # per block, the same at every level
        self.embed = nn.Linear(in_channels * patch * patch, widths[0])
        self.levels = nn.ModuleList(
            [Level(widths[i], heads * 2**i, depths[i], tokens, 2 ** (levels - 1 - i), mlp_mult) for i in range(levels)]
        )
        self.aggregate = nn.ModuleList([Aggregate(widths[i], widths[i + 1]) for i in range(levels - 1)])
        self.norm = nn.LayerNorm(widths[-1], eps=LN_EPS)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["regions"]
        b, c, height, width = x.shape
        p = self.patch
        x = x.reshape(b, c, height // p, p, width // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, p, p, c)
        x = self.embed(x.reshape(b, height // p, width // p, p * p * c))
        for i, level in enumerate(self.levels):
            x = level(x)
            if i < len(self.aggregate):
                x = self.aggregate[i](x)
        return self.head(self.norm(x).mean(dim=(1, 2)))


@register_model
def htnet(num_classes: int = 3, **overrides) -> HTNet:
    return HTNet(num_classes=num_classes, **overrides)
