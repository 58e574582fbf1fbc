"""TimeSformer (Bertasius et al., 2021), small, with divided space-time attention, on the video frames.

Each frame is cut into 16x16 patches (a shared linear embedding); a learned spatial position code (one
per patch position, one for the CLS token) and a learned time code (one per frame) are added, and the
CLS token is prepended to the joint sequence [CLS, frame 0 patches, frame 1 patches, ...]. Each block
is, as in the paper's divided space-time attention, three pre-norm residual steps, each with its own
weights: temporal attention (a patch attends to the patches at its position in every frame), then
spatial attention (a patch attends to the patches of its frame and to the CLS token), then the MLP.
The head classifies the normalised CLS token.

Both attentions run on the whole joint sequence with a mask (`divided_masks` in
hsta_bench/models/attention.py, in FlexAttention's mask_mod convention), so every backend of
hsta_bench.models.attention applies and
flex can skip masked blocks. The CLS token takes no part in temporal attention (its row attends to
itself only and its update is dropped); in spatial attention it attends to every token. (The released
code instead runs spatial attention per frame with a copy of the CLS token in each and averages the
copies; patch tokens get the same result either way.)
Sizes: the paper uses ViT-Base (width 768, 12 heads, 12 blocks) on 8x224x224 clips; for the CPU
budget ours is 8 frames of 64x64 (4x4 patches of 16x16 per frame, 129 tokens with CLS), width 192,
3 heads, 4 blocks: 2,527,491 parameters with 3 classes. The released code's extra linear layer after
temporal attention (`temporal_fc`) is not in the paper and not here.
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.attention import SelfAttention, divided_masks
from hsta_bench.models.layers import LN_EPS, DropPath, Mlp, init_weights
from hsta_bench.models.registry import MERModel, register_model


class DividedBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm_time = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn_time = SelfAttention(dim, heads, qkv_bias)
        self.norm_space = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn_space = SelfAttention(dim, heads, qkv_bias)
        self.norm_mlp = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop = nn.Dropout(drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, temporal_mask, spatial_mask) -> torch.Tensor:
        t = self.drop_path(self.drop(self.attn_time(self.norm_time(x), temporal_mask)))
        x = torch.cat([x[:, :1], x[:, 1:] + t[:, 1:]], dim=1)  # the CLS token skips temporal attention
        x = x + self.drop_path(self.drop(self.attn_space(self.norm_space(x), spatial_mask)))
        return x + self.drop_path(self.mlp(self.norm_mlp(x)))


class TimeSformer(MERModel):
    def __init__(
        self,
        num_classes: int = 3,
        frames: int = 8,
        size: int = 64,
        patch: int = 16,
        dim: int = 192,
        heads: int = 3,
        depth: int = 4,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.1,
    ):
        super().__init__()
        if size % patch:
            raise ValueError(f"timesformer: frame size {size} is not a multiple of the patch size {patch}")
        self.num_classes = num_classes
        self.inputs = {"frames": (3, frames, size, size)}
        self.frames, self.patches = frames, (size // patch) ** 2
        self.embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + self.patches, dim))  # CLS, then the patch positions
        self.time = nn.Parameter(torch.zeros(1, frames, 1, dim))
        self.pos_drop = nn.Dropout(drop)
        rates = torch.linspace(0, drop_path, depth, device="cpu").tolist()  # also under a meta default device
        self.blocks = nn.ModuleList([DividedBlock(dim, heads, mlp_ratio, True, drop, rates[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, num_classes)
        self.apply(init_weights)
        for p in (self.cls_token, self.pos, self.time):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["frames"]  # (B, 3, T, S, S)
        b, c, t, h, w = x.shape
        x = self.embed(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, D, S/p, S/p)
        x = x.flatten(2).transpose(1, 2).reshape(b, t, self.patches, -1)
        x = x + self.pos[:, None, 1:].to(x.dtype) + self.time.to(x.dtype)
        cls = (self.cls_token + self.pos[:, :1]).to(x.dtype).expand(b, -1, -1)
        x = self.pos_drop(torch.cat([cls, x.reshape(b, t * self.patches, -1)], dim=1))
        temporal, spatial = divided_masks(t, self.patches)
        for block in self.blocks:
            x = block(x, temporal, spatial)
        return self.head(self.norm(x[:, 0]))


@register_model(small={"frames": 2, "size": 32})
def timesformer(num_classes: int = 3, **overrides) -> TimeSformer:
    return TimeSformer(num_classes=num_classes, **overrides)
