"""Transformer pieces shared by HSTA and the attention baselines."""

from __future__ import annotations

import math

import torch
from torch import nn

from hsta_bench.models.attention import CrossAttention, SelfAttention

LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability p (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim), nn.Dropout(drop))


class Block(nn.Module):
    """Pre-norm transformer block with joint attention over all tokens (HSTA's USTA block)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool | str = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, heads, qkv_bias)
        self.drop1 = nn.Dropout(drop)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, mask_mod=None) -> torch.Tensor:
        x = x + self.drop_path(self.drop1(self.attn(self.norm1(x), mask_mod)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossBlock(nn.Module):
    """The first token attends over all tokens (no MLP); returns the updated first token only."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = CrossAttention(dim, heads, qkv_bias)
        self.drop1 = nn.Dropout(drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] + self.drop_path(self.drop1(self.attn(self.norm1(x))))


def projection(dim_in: int, dim_out: int) -> nn.Sequential:
    """LayerNorm, GELU, Linear: how a CLS token changes width between branches."""
    return nn.Sequential(nn.LayerNorm(dim_in, eps=LN_EPS), nn.GELU(), nn.Linear(dim_in, dim_out))


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """(1, positions, dim) fixed position code: sin on even, cos on odd channels, wavelengths up to 10000."""
    position = torch.arange(positions, dtype=torch.float64)[:, None]
    rates = torch.exp(-math.log(10000.0) * (2 * (torch.arange(dim) // 2)).double() / dim)
    angles = position * rates[None, :]
    table = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.float().unsqueeze(0)


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
