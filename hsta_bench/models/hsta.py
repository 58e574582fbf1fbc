"""HSTA: Hierarchical Space-Time Attention (Hao et al., arXiv 2405.03202), written from the released
configuration (../shared/docs/HSTA.md).

Two branches over space-time tubelets: branch 0 reads the special frames (onset and apex as a 2-frame
clip, or optical flow for `hsta_flow`), branch 1 the video (6 frames from onset..offset). Each HSTA layer
runs unimodal space-time attention (USTA: joint attention over all tokens of a branch, 1 block on
branch 0 and 2 on branch 1), then crossmodal attention (CSTA: each branch's CLS token, projected to the
other branch's width, attends over that branch's tokens and is projected back). The released
configuration stacks 4 layers; the head concatenates the two normalised CLS tokens.

Ablations: `cross=False` drops CSTA (the branches meet only in the head); `usta_only` is the video
branch alone (no special frames, no crossmodal attention); `frames` changes the video length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import torch
from torch import nn

from hsta_bench.models.layers import LN_EPS, Block, CrossBlock, init_weights, projection, sinusoid_table
from hsta_bench.models.registry import MERModel, register_model


@dataclass(frozen=True)
class HSTAConfig:
    img_size: int = 224  # video frames and special frames are img_size square
    frames: int = 6  # video frames (branch 1)
    special: str = "special"  # branch-0 input kind: special (onset+apex) or flow
    special_size: int = 224  # side of the branch-0 input
    special_frames: int = 2  # frames in the branch-0 clip (1 for a flow image)
    video: str = "frames"  # branch-1 input kind: frames, or apex (a 1-frame "video", for flow datasets)
    dims: tuple[int, int] = (384, 768)
    heads: tuple[int, int] = (12, 12)
    tubelets: tuple[tuple[int, int, int], tuple[int, int, int]] = ((2, 12, 12), (2, 16, 16))
    depths: tuple[int, int] = (1, 2)  # USTA blocks per branch in each HSTA layer
    layers: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: str = "qv"  # USTA: q and v biases, no k bias (as released); CSTA's wq/wk/wv all have one
    drop: float = 0.2  # after position codes, attention and MLP outputs
    drop_path: float = 0.2  # stochastic depth, rising linearly over the layers
    head_drop: float = 0.0  # the release configures 0.2-0.4 but never applies it
    cross: bool = True  # CSTA on (the ablation "without CSTA" turns it off)
    two_branches: bool = True  # False: one branch alone (the ablation "USTA only")
    single: int = 1  # the branch kept when two_branches is False: 1 the video (USTA only), 0 the special/flow input


class TubeletEmbed(nn.Module):
    """Non-overlapping (t, h, w) tubelets of a (B, 3, T, H, W) clip -> (B, tokens, dim)."""

    def __init__(self, dim: int, tubelet: tuple[int, int, int], channels: int = 3):
        super().__init__()
        self.proj = nn.Conv3d(channels, dim, kernel_size=tubelet, stride=tubelet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Branch(nn.Module):
    pos: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, dim: int, tubelet, tokens: int, drop: float):
        super().__init__()
        self.embed = TubeletEmbed(dim, tubelet)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos", sinusoid_table(tokens + 1, dim), persistent=False)  # CLS at position 0
        self.pos_drop = nn.Dropout(drop)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos_drop(x + self.pos.to(x.dtype))


class CSTA(nn.Module):
    """Crossmodal space-time attention, both ways, from the same USTA outputs."""

    def __init__(self, dims: tuple[int, int], heads: tuple[int, int], drop: float):
        super().__init__()
        self.to_other = nn.ModuleList([projection(dims[i], dims[1 - i]) for i in range(2)])
        self.fuse = nn.ModuleList([CrossBlock(dims[1 - i], heads[1 - i], True, drop) for i in range(2)])
        self.back = nn.ModuleList([projection(dims[1 - i], dims[i]) for i in range(2)])

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []  # the projected-back CLS token replaces the branch's own (no residual to it)
        for i in range(2):
            other = xs[1 - i]
            query = self.to_other[i](xs[i][:, :1])
            fused = self.fuse[i](torch.cat([query, other[:, 1:]], dim=1))
            out.append(torch.cat([self.back[i](fused), xs[i][:, 1:]], dim=1))
        return out


class HSTA(MERModel):
    def __init__(self, num_classes: int, config: HSTAConfig = HSTAConfig()):
        super().__init__()
        c = self.config = config
        self.num_classes = num_classes
        shapes = [(3, c.special_frames, c.special_size, c.special_size), (3, c.frames, c.img_size, c.img_size)]
        self.kinds = (c.special, c.video)
        if c.single not in (0, 1):
            raise ValueError(f"HSTA: single={c.single}: the branch kept is 0 (special frames or flow) or 1 (video)")
        branches = (0, 1) if c.two_branches else (c.single,)
        self.branch_ids = branches
        # a one-frame input (flow, apex) is taken as an image; forward gives it its time axis back
        self.inputs = {
            self.kinds[b]: shapes[b] if shapes[b][1] > 1 else shapes[b][:1] + shapes[b][2:] for b in branches
        }
        self.branches = nn.ModuleDict()
        for b in branches:
            tokens = 1
            for size, step in zip(shapes[b][1:], c.tubelets[b]):
                tokens *= size // step
            self.branches[str(b)] = Branch(c.dims[b], c.tubelets[b], tokens, c.drop)
        # stochastic depth rises over layer slots: block j of layer k (either branch) gets slot k * max_depth + j
        slots = max(c.depths)
        rates = torch.linspace(
            0, c.drop_path, c.layers * slots, device="cpu"
        ).tolist()  # also under a meta default device
        self.layers = nn.ModuleList()
        for k in range(c.layers):
            layer = nn.Module()
            layer.usta = nn.ModuleDict(
                {
                    str(b): nn.ModuleList(
                        [
                            Block(c.dims[b], c.heads[b], c.mlp_ratio, c.qkv_bias, c.drop, rates[k * slots + j])
                            for j in range(c.depths[b])
                        ]
                    )
                    for b in branches
                }
            )
            csta = CSTA(c.dims, c.heads, c.drop) if (c.cross and c.two_branches) else None
            # torch types nn.Module.__setattr__'s value as Tensor | Module; None makes a plain attribute at runtime
            layer.csta = csta  # type: ignore[assignment]
            self.layers.append(layer)
        self.norms = nn.ModuleDict({str(b): nn.LayerNorm(c.dims[b], eps=LN_EPS) for b in branches})
        self.head_drop = nn.Dropout(c.head_drop)
        self.head = nn.Linear(sum(c.dims[b] for b in branches), num_classes)
        self.apply(init_weights)

    def lr_layers(self):
        """For layer-wise lr decay: parameter name -> (layer id, number of ids - 1). Embeddings are 0, HSTA
        layer k is k + 1, the final norms and head the top."""
        top = self.config.layers + 1

        def layer_of(name: str) -> tuple[int, int]:
            if name.startswith("branches."):
                return 0, top
            if name.startswith("layers."):
                return int(name.split(".")[1]) + 1, top
            return top, top

        return layer_of

    def _clip(self, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        x = batch[kind]
        return x.unsqueeze(2) if x.ndim == 4 else x  # an image is a 1-frame clip

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        xs = {b: self.branches[str(b)](self._clip(batch, self.kinds[b])) for b in self.branch_ids}
        for layer in self.layers:  # each a plain nn.Module holding `usta` and `csta` (see __init__)
            usta, csta = cast(nn.ModuleDict, layer.usta), cast("CSTA | None", layer.csta)
            for b in self.branch_ids:
                for block in cast(nn.ModuleList, usta[str(b)]):
                    xs[b] = block(xs[b])
            if csta is not None:
                xs[0], xs[1] = csta([xs[0], xs[1]])
        cls = torch.cat([self.norms[str(b)](xs[b][:, 0]) for b in self.branch_ids], dim=-1)
        return self.head(self.head_drop(cls))


BASE = HSTAConfig()
SMALL = replace(
    BASE, dims=(192, 384), heads=(6, 6), layers=3, img_size=112, special_size=112, tubelets=((2, 8, 8), (2, 16, 16))
)
TINY = replace(
    BASE,
    dims=(64, 128),
    heads=(4, 4),
    layers=2,
    img_size=64,
    special_size=64,
    tubelets=((2, 8, 8), (2, 16, 16)),
    drop=0.1,
    drop_path=0.1,
    head_drop=0.2,
)
# optical flow (u, v, strain; 28x28) as the special input, the apex image as a 1-frame video, so HSTA
# runs on precomputed-flow datasets (megc2019-flow) as well as on video datasets
FLOW = replace(
    SMALL, special="flow", special_size=28, special_frames=1, video="apex", frames=1, tubelets=((1, 4, 4), (1, 16, 16))
)


def _build(config: HSTAConfig, num_classes: int, overrides: dict) -> HSTA:
    overrides = dict(overrides)
    if overrides.get("img_size") and "special_size" not in overrides and config.special == "special":
        overrides["special_size"] = overrides["img_size"]
    # scalar stand-ins for tuple settings, so a tune can search them (tuning/space.py searches scalars): width w
    # gives dims (w, 2w), the released ratio (384, 768); special_patch / video_patch set the spatial side of a
    # branch's tubelets, keeping their time extent
    width = overrides.pop("width", None)
    if width is not None:
        overrides["dims"] = (int(width), 2 * int(width))
    sides = [overrides.pop(key, None) for key in ("special_patch", "video_patch")]
    if any(side is not None for side in sides):
        tubelets = overrides.get("tubelets", config.tubelets)
        overrides["tubelets"] = tuple(
            t if side is None else (t[0], int(side), int(side)) for t, side in zip(tubelets, sides)
        )
    return HSTA(num_classes, replace(config, **overrides))


@register_model(small={"img_size": 48})
def hsta_base_224(num_classes: int = 7, **overrides) -> HSTA:
    """The released configuration: 81,887,623 parameters with 7 classes."""
    return _build(BASE, num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_base_224_no_csta(num_classes: int = 7, **overrides) -> HSTA:
    return _build(replace(BASE, cross=False), num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_base_224_usta_only(num_classes: int = 7, **overrides) -> HSTA:
    return _build(replace(BASE, two_branches=False, cross=False), num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_base_224_frames4(num_classes: int = 7, **overrides) -> HSTA:
    return _build(replace(BASE, frames=4), num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_base_224_frames8(num_classes: int = 7, **overrides) -> HSTA:
    return _build(replace(BASE, frames=8), num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_small(num_classes: int = 3, **overrides) -> HSTA:
    return _build(SMALL, num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_tiny(num_classes: int = 3, **overrides) -> HSTA:
    return _build(TINY, num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_tiny_no_csta(num_classes: int = 3, **overrides) -> HSTA:
    return _build(replace(TINY, cross=False), num_classes, overrides)


@register_model(small={"img_size": 48})
def hsta_tiny_usta_only(num_classes: int = 3, **overrides) -> HSTA:
    return _build(replace(TINY, two_branches=False, cross=False), num_classes, overrides)


@register_model(small={"img_size": 32})
def hsta_flow(num_classes: int = 3, **overrides) -> HSTA:
    return _build(FLOW, num_classes, overrides)
