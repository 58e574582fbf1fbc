"""CausalNet as its authors released it (Zhang, Tang and Chen, ICCV 2025; tony19980810/CausalNet, MIT licence).

The input is the `causal` input kind (hsta_bench/preprocess/causal.py): per sample four 28x28 images, each
cut into the release's four 14x14 blocks around fixed points and tiled 2x2 (main_train.py:58-130, 184-210):
0 the onset->apex flow, 1 the apex->offset flow, 2 and 3 their direction maps. The network, layer for layer
as Models.py builds it with main_train.py's configuration (main_train.py:257-267: image 28, patch 7, dim 256,
heads 3, three hierarchies, blocks (3, 3, 9), 3 classes, gamma 0.5; mlp_mult 4, dropout 0 by default):

- two HTNet-style backbones (Models.py:491-517), `to_patch_embedding` + `layers` shared by images 0 and 1
  (Models.py:541-560), `to_patch_embedding1` + `layers1` shared by images 2 and 3 (Models.py:562-589). Each:
  a patch embedding (7x7 patches flattened in (row, column, channel) order, a 1x1 convolution to 256: a 4x4
  map; Models.py:491-499), then three levels of widths 256, 512, 1024 with 3, 6, 12 heads (Models.py:482-490).
  At each level the map is cut into 4x4, 2x2, 1 blocks of one position each (Models.py:546-548), a learned
  scalar added (Models.py:103, 110-114), and 3, 3, 9 pre-norm blocks of attention and a 4x MLP of 1x1
  convolutions (GELU), each residual (Models.py:99-119, 47-58). The norm is a LayerNorm over channels with a
  (1, C, 1, 1) gain and bias, biased variance, eps 1e-5 (Models.py:15-25). Attention: q, k, v from one 1x1
  convolution without bias, heads width // heads = 85 wide (so q, k, v are 255, 510, 1020 wide; Models.py:60-90),
  scaled by 85^-1/2, output through a 1x1 convolution with bias. Between levels a 3x3 convolution to the next
  width, the channel LayerNorm and 3x3 max-pooling with stride 2 (Models.py:92-97): 4x4 -> 2x2 -> 1x1;
- each 1024-wide 1x1 output read as a 2x2 map of 256 channels (channel c*4 + position; Models.py:591-596);
- a cross transformer between the two direction maps (Models.py:196-236, 523; the paper's CMPLM, as we read
  it), as deep as the last level (9: the release passes the loop's last `depth`, Models.py:506-523): per
  layer, with one LayerNorm (Models.py:203) for both streams, x += attend(norm(x) over the other stream unnormalised),
  then the other stream += attend(its norm taken before, over the updated x), then a 4x MLP (GELU) on each,
  residual, unnormalised (Models.py:219-230). Its attention (Models.py:133-193): 8 heads of 32, q from one
  linear map, k and v from another, scaled by the full width 256^-1/2 (not the head width; Models.py:137),
  and a 2x2-neighbourhood mask: scores times M (1 for positions at most one step apart, 0 for the two
  diagonals) plus P (-(key index + 1) * gamma on the diagonals), softmax, times M again (Models.py:141-156,
  185-188): a diagonal pair enters the softmax's denominator with a fixed score and is then dropped;
- the flows plus the CMPLM's outputs: flow 0 += direction 2's, flow 1 += direction 3's (Models.py:597-600);
- the CAB, one layer (Models.py:401-457, 525-532) with one LayerNorm, an STCA, a 4x MLP and a CRM:
  forward (0, 1) and backward (1, 0) each go through norm, STCA and the MLP (residual); the CRM takes both
  second outputs. STCA (Models.py:239-355): masked spatial self-attention as above but scaled by the head
  width 32^-1/2, added to each (normalised) input; then the second gets, per position, attention of its
  query over two keys, the first's and its own, at that position (scaled 32^-1/2, own linear maps), added.
  CRM (Models.py:358-398): q from the forward, k from the backward, v from their sum, full attention over
  the 4 positions (32^-1/2), plus forward and backward, then the output linear map;
- head: the CRM's output, the forward first and the backward first outputs (3 x 4 positions x 256) flattened,
  two linear layers 3072 -> 2048 -> classes with nothing between them (Models.py:535-539, 606-609).
Initialisation is torch's default as in the release, pos_emb drawn from a normal. 276,590,089 parameters with
3 classes (tests/test_causalnet.py counts them from the release's layer shapes). The attribute names (and the
M_mask / P_matrix buffers) are the release's, so its state dicts load with `load_state_dict`;
scripts/compare_causalnet.py runs the release's Models.py beside this one on the same weights.

Fed as released: main_train.py reads the images with cv2.imread and makes float tensors of the tiled uint8
arrays as they are (main_train.py:112, 280-282), BGR and 0..255 unscaled: `encoding = {"causal": "bgr255"}`
(hsta_bench/models/inputs.py); the release's (N, 4, C, H, W) batch is our (N, C, 4, H, W) permuted.

Where ours differs, none of it changing the function at the released configuration:
- the two images of a backbone go through it as one batch of 2B (the release runs them one after the other;
  nothing in a backbone mixes samples, so the outputs are the same up to float rounding), and its 1x1
  convolutions (the same modules and weights) are computed as matrix products over the channels, which they are:
  on a CPU a training step takes a third of the time;
- the widths after the backbones follow `dim` (the release writes 256 and 1536 * 2, i.e. its dim's, which
  break at any other dim), the head's hidden width (2048) and the CMPLM's depth are arguments (defaults: the
  release's), so a reduced CausalNet is the same code at smaller sizes;
- the plain attentions (the backbones', the CRM's) go through the suite's attention kernels
  (hsta_bench/models/attention.py); the masked ones are written out, as a fused kernel cannot drop
  probabilities after the softmax.
Not reproduced here: the release keeps, for each test subject, the epoch with the best accuracy on that
subject's test samples and stops early when it reaches 1 (main_train.py:346-363); our recipe
(configs/models/causalnet.yaml) keeps the last epoch; `--audit` measures what the release's rule reports.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from hsta_bench.models.attention import AttentionBase, attend
from hsta_bench.models.registry import MERModel, register_model

GRID = ((0, 0), (0, 1), (1, 0), (1, 1))  # the 2x2 map's positions in token order (Models.py:141)


def neighbour_mask(gamma: float) -> tuple[list[list[float]], list[list[float]]]:
    """(M, P) over the 2x2 map's 4 positions: M 1 where two positions are at most one step apart, else 0; P
    -(key + 1) * gamma where they are not, else 0 (Models.py:141-156). Plain numbers, so that a model built on
    the meta device needs no data to make them."""
    m = [[1.0 if math.dist(a, b) <= 1.0 else 0.0 for b in GRID] for a in GRID]
    p = [[0.0 if m[i][j] else -(j + 1) * gamma for j in range(len(GRID))] for i in range(len(GRID))]
    return m, p


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, with a (1, C, 1, 1) gain `g` and bias `b`."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (the release's module and weight shape), computed as the product over channels it is:
    on the 1x1 blocks the backbones attend in, a matrix product is several times faster than a convolution."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True):
        super().__init__(dim_in, dim_out, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.movedim(1, -1), self.weight.flatten(1), self.bias).movedim(-1, 1)


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = ChannelNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class ConvMLP(nn.Module):
    """1x1 convolution to mult x the width, GELU, 1x1 convolution back (dropout after each)."""

    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            Pointwise(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), Pointwise(dim * mult, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvAttention(AttentionBase):
    """Self-attention over the positions of a (B, C, H, W) map; heads width // heads wide (q, k, v may be
    narrower than the width), q, k, v from one bias-free 1x1 convolution."""

    def __init__(self, dim: int, heads: int, dropout: float):
        head_dim = dim // heads
        super().__init__(head_dim * heads, heads, None)
        self.inner = head_dim * heads
        self.to_qkv = Pointwise(dim, 3 * self.inner, bias=False)
        self.to_out = nn.Sequential(Pointwise(self.inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        d = self.inner // self.heads
        # channel (head, d) and position (row, column) -> (B, heads, positions, d)
        q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, d, h * w).transpose(-1, -2).unbind(1)
        out = attend(q, k, v, self.backend)  # (B, heads, positions, d)
        return self.to_out(out.transpose(-1, -2).reshape(b, self.inner, h, w))


class Transformer(nn.Module):
    """A learned scalar per position (on every channel), then `depth` pre-norm attention + MLP blocks."""

    def __init__(self, dim: int, seq_len: int, depth: int, heads: int, mlp_mult: int, dropout: float):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(seq_len))
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [PreNorm(dim, ConvAttention(dim, heads, dropout)), PreNorm(dim, ConvMLP(dim, mlp_mult, dropout))]
                )
                for _ in range(depth)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = x + self.pos_emb[: h * w].reshape(1, 1, h, w)
        for attn, ff in _groups(self.layers):
            x = attn(x) + x
            x = ff(x) + x
        return x


def aggregate(dim_in: int, dim_out: int) -> nn.Sequential:
    """3x3 convolution to the next width, LayerNorm over channels, 3x3 max-pooling with stride 2."""
    return nn.Sequential(
        nn.Conv2d(dim_in, dim_out, 3, padding=1), ChannelNorm(dim_out), nn.MaxPool2d(3, stride=2, padding=1)
    )


class Patches(nn.Module):
    """(B, C, H, W) -> (B, p*p*C, H/p, W/p): each p x p patch flattened in (row, column, channel) order."""

    def __init__(self, patch: int):
        super().__init__()
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        p = self.patch
        x = x.reshape(b, c, height // p, p, width // p, p).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(b, p * p * c, height // p, width // p)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def masked_attention(q, k, v, scale: float, mask: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The release's neighbourhood attention: (q k^T * scale) * M + P, softmax, * M, then the weighted v."""
    m, p = mask
    scores = (q @ k.transpose(-1, -2)) * scale * m + p
    return (scores.softmax(dim=-1) * m) @ v


class Neighbourhood(nn.Module):
    """Holds the (M, P) masks of the 2x2 map as the release's buffers `M_mask` and `P_matrix` (in its state dict)."""

    M_mask: torch.Tensor
    P_matrix: torch.Tensor

    def register_masks(self, gamma: float) -> None:
        m, p = neighbour_mask(gamma)
        self.register_buffer("M_mask", torch.tensor(m))
        self.register_buffer("P_matrix", torch.tensor(p))

    def mask(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.M_mask, self.P_matrix


def _groups(layers: nn.ModuleList) -> list[Any]:
    """The release's ModuleLists of ModuleLists, each inner one as a tuple (for typing: a Module is no sequence)."""
    return [tuple(cast(nn.ModuleList, group)) for group in layers]


class MaskedAttention(Neighbourhood):
    """Attention of `x` over `context` on the 2x2 map with the neighbourhood mask (the CMPLM's, Models.py:133)."""

    def __init__(self, dim: int, heads: int, dropout: float, gamma: float, scale: float):
        super().__init__()
        self.heads = heads
        self.scale = scale
        self.register_masks(gamma)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, dim * 2)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (_heads(t, self.heads) for t in (self.to_q(x), k, v))
        return self.to_out(_merge(masked_attention(q, k, v, self.scale, self.mask())))


def mlp(dim: int, mult: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim), nn.Dropout(dropout)
    )


class CrossTransformer(nn.Module):
    """The CMPLM: two (B, D, 2, 2) maps attend to each other, layer by layer (Models.py:196-236)."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_mult: int, gamma: float, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        nn.LayerNorm(dim),
                        MaskedAttention(dim, heads, dropout, gamma, scale=dim**-0.5),  # the full width (Models.py:137)
                        mlp(dim, mlp_mult, dropout),
                    ]
                )
                for _ in range(depth)
            ]
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for norm, attn, ff in _groups(self.layers):
            a_norm, b_norm = norm(a), norm(b)
            a = a + attn(a_norm, b)
            b = b + attn(b_norm, a)
            a = ff(a) + a
            b = ff(b) + b
        return a, b


class SpatialTemporalAttention(Neighbourhood):
    """STCA (Models.py:239-355): masked spatial self-attention of each input, then the second input's queries
    over, per position, the first's key and its own."""

    def __init__(self, dim: int, heads: int, dropout: float, gamma: float):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.register_masks(gamma)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, dim * 2)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.temp_to_q = nn.Linear(dim, dim)
        self.temp_to_kv = nn.Linear(dim, dim * 2)
        self.temp_to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        k, v = self.to_kv(x).chunk(2, dim=-1)
        q, k, v = (_heads(t, self.heads) for t in (self.to_q(x), k, v))
        return self.to_out(_merge(masked_attention(q, k, v, self.scale, self.mask())))

    def temporal(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        k_other, v_other = self.temp_to_kv(first).chunk(2, dim=-1)
        k_own, v_own = self.temp_to_kv(second).chunk(2, dim=-1)
        q = _heads(self.temp_to_q(second), self.heads)  # (B, H, N, d)
        keys = torch.stack([_heads(k_other, self.heads), _heads(k_own, self.heads)], dim=3)  # (B, H, N, 2, d)
        values = torch.stack([_heads(v_other, self.heads), _heads(v_own, self.heads)], dim=3)
        weights = ((q.unsqueeze(3) * keys).sum(-1) * self.scale).softmax(dim=-1)  # (B, H, N, 2)
        return self.temp_to_out(_merge((weights.unsqueeze(-1) * values).sum(3)))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.spatial(first) + first
        second = self.spatial(second) + second
        return first, self.temporal(first, second) + second


class CausalRelationMining(AttentionBase):
    """CRM (Models.py:358-398): forward queries, backward keys, values of their sum, plus both, projected."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__(dim, heads, None)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.split(t) for t in (self.to_q(forward), self.to_k(backward), self.to_v(backward + forward)))
        return self.to_out(self.merge(attend(q, k, v, self.backend)) + forward + backward)


class CausalAttentionBlock(nn.Module):
    """CAB (Models.py:401-457): STCA + MLP forward (first, second) and backward (second, first), then the CRM."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_mult: int, gamma: float, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        nn.LayerNorm(dim),
                        SpatialTemporalAttention(dim, heads, dropout, gamma),
                        mlp(dim, mlp_mult, dropout),
                        CausalRelationMining(dim, heads, dropout),
                    ]
                )
                for _ in range(depth)
            ]
        )

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        f1, f2, b1, b2 = first, second, second, first
        long = first
        for norm, st, ff, crm in _groups(self.layers):
            f1, f2 = st(norm(f1), norm(f2))
            f1, f2 = ff(f1) + f1, ff(f2) + f2
            b1, b2 = st(norm(b1), norm(b2))
            b1, b2 = ff(b1) + b1, ff(b2) + b2
            long = crm(f2, b2)
        return torch.cat([long, f1, b1], dim=1)  # (B, 3 * positions, D)


class CausalNet(MERModel):
    encoding = {"causal": "bgr255"}  # the release's: cv2.imread's channel order, 0..255 unscaled

    def __init__(
        self,
        num_classes: int = 3,
        size: int = 28,
        patch: int = 7,
        dim: int = 256,
        heads: int = 3,
        levels: int = 3,
        depths: tuple[int, ...] = (3, 3, 9),
        mlp_mult: int = 4,
        gamma: float = 0.5,
        dropout: float = 0.0,
        cross_depth: int | None = None,  # the CMPLM's layers; None: the last level's depth, as released
        cross_heads: int = 8,
        head_hidden: int = 2048,
        in_channels: int = 3,
    ):
        super().__init__()
        depths = tuple(depths) if isinstance(depths, (tuple, list)) else (int(depths),) * levels
        grid = size // patch
        top = 2 ** (levels - 1)  # blocks per side at the first level
        final = dim * top  # the last level's width
        if size % patch or grid != top or len(depths) != levels or final % (4 * cross_heads):
            raise ValueError(
                f"causalnet: size {size} must be patch {patch} x {top} (a {top}x{top} patch grid, one position per "
                f"block, pooled to 1x1 over {levels} levels), depths one entry per level, and the last width "
                f"{final} divisible by 4 x {cross_heads} cross heads"
            )
        self.num_classes = num_classes
        self.inputs = {"causal": (in_channels, 4, size, size)}
        widths = [dim * 2**i for i in range(levels)]
        self.to_patch_embedding = nn.Sequential(Patches(patch), Pointwise(in_channels * patch * patch, dim))
        self.to_patch_embedding1 = nn.Sequential(Patches(patch), Pointwise(in_channels * patch * patch, dim))
        self.layers = self._backbone(widths, heads, depths, mlp_mult, dropout)
        self.layers1 = self._backbone(widths, heads, depths, mlp_mult, dropout)
        width = final // 4  # the 1x1 output read as a 2x2 map
        depth = depths[-1] if cross_depth is None else cross_depth
        self.CrossAttention = CrossTransformer(width, depth, cross_heads, mlp_mult, gamma, dropout)
        self.cab = CausalAttentionBlock(width, 1, cross_heads, mlp_mult, gamma, dropout)
        self.mlp_head = nn.Sequential(nn.Linear(3 * 4 * width, head_hidden), nn.Linear(head_hidden, num_classes))

    @staticmethod
    def _backbone(widths, heads, depths, mlp_mult, dropout) -> nn.ModuleList:
        levels = len(widths)
        return nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        Transformer(widths[i], 1, depths[i], heads * 2**i, mlp_mult, dropout),
                        aggregate(widths[i], widths[i + 1]) if i < levels - 1 else nn.Identity(),
                    ]
                )
                for i in range(levels)
            ]
        )

    @staticmethod
    def _hierarchy(x: torch.Tensor, layers: nn.ModuleList) -> torch.Tensor:
        """(B, C, G, G) through the levels; at level i the map is cut into 2^(levels-1-i) blocks per side."""
        for i, (transformer, agg) in enumerate(_groups(layers)):
            k = 2 ** (len(layers) - 1 - i)
            b, c, height, width = x.shape
            h, w = height // k, width // k
            x = x.reshape(b, c, k, h, k, w).permute(0, 2, 4, 1, 3, 5).reshape(b * k * k, c, h, w)
            x = transformer(x)
            x = x.reshape(b, k, k, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, height, width)
            x = agg(x)
        return x

    def _stream(self, images: torch.Tensor, embed: nn.Module, layers: nn.ModuleList) -> torch.Tensor:
        """(B, 2, C, S, S) -> (B, 2, 4, D): both images through one backbone, each 1x1 output as 4 positions."""
        b = images.shape[0]
        x = self._hierarchy(embed(images.flatten(0, 1)), layers)  # (2B, 4D, 1, 1)
        return x.reshape(b, 2, -1, 4).transpose(-1, -2)  # channel c * 4 + position -> (position, c)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["causal"].transpose(1, 2)  # (B, C, 4, S, S) -> the release's (B, 4, C, S, S)
        flows = self._stream(x[:, :2], self.to_patch_embedding, self.layers)
        directions = self._stream(x[:, 2:], self.to_patch_embedding1, self.layers1)
        d0, d1 = self.CrossAttention(directions[:, 0], directions[:, 1])
        out = self.cab(flows[:, 0] + d0, flows[:, 1] + d1)
        return self.mlp_head(out.flatten(1))


@register_model
def causalnet(num_classes: int = 3, **overrides) -> CausalNet:
    return CausalNet(num_classes=num_classes, **overrides)
