"""Attention cases: the attention calls a model makes on a batch, at their real token shapes.

A model's forward is run once with attention.recording(): every call reports its (B, H, Nq, D) queries,
(B, H, Nk, D) keys and its mask (B counts attention instances: HTNet's local blocks multiply the batch).
Calls of the same shape and mask are one case with a count. The kinds:

    joint     self-attention over every token (HSTA's USTA: joint space-time; the baselines' ViT blocks)
    cross     one query token over every token (HSTA's CSTA, CrossViT-style CLS fusion)
    temporal  TimeSformer's divided attention, as a mask over the joint sequence: same place, other frames
    spatial   ... same frame, other places

FLOPs are counted analytically for dense kernels (what naive and sdpa compute; flex skips fully masked
blocks, so for masked cases its useful work is `density` of that): forward 4*B*H*Nq*Nk*D (q k^T and the
weighted sum of v, two multiply-adds each), backward twice that (dq, dk, dv and the gradient of the
weights, one matrix product each). The softmax's few operations per score are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from hsta_bench.models.attention import recording


@dataclass(frozen=True)
class AttentionCase:
    model: str
    kind: str
    batch: int
    heads: int
    q_len: int
    kv_len: int
    head_dim: int
    count: int = 1  # calls of this shape in one forward
    mask_mod: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.kind} B{self.batch} H{self.heads} {self.q_len}x{self.kv_len} d{self.head_dim}"

    def flops(self, backward: bool = False) -> int:
        """Dense FLOPs of one call (forward, or forward + backward)."""
        forward = 4 * self.batch * self.heads * self.q_len * self.kv_len * self.head_dim
        return 3 * forward if backward else forward

    def density(self) -> float:
        """The fraction of (query, key) pairs the mask allows (1 without a mask)."""
        if self.mask_mod is None:
            return 1.0

        qi = torch.arange(self.q_len)[:, None]
        ki = torch.arange(self.kv_len)[None, :]
        return float(self.mask_mod(0, 0, qi, ki).float().mean())

    def inputs(self, dtype=None, device="cpu", requires_grad: bool = False, seed: int = 0):
        """Random q, k, v of this case's shapes."""
        generator = torch.Generator().manual_seed(seed)
        shapes = [(self.batch, self.heads, n, self.head_dim) for n in (self.q_len, self.kv_len, self.kv_len)]
        # drawn in fp32 and then cast, so that every dtype gets the same values (up to its rounding)
        return [
            torch.randn(s, generator=generator).to(device, dtype or torch.float32).requires_grad_(requires_grad)
            for s in shapes
        ]

    def intensity(self, element_bytes: int = 4) -> float:
        """FLOPs of the forward pass per byte it must at least move (read q, k, v, write the output): below the
        hardware's balance (ceiling / memory bandwidth) a case is bound by memory, not by its FLOP rate."""
        moved = self.batch * self.heads * self.head_dim * (2 * self.q_len + 2 * self.kv_len) * element_bytes
        return self.flops() / moved


def _kind(q, k, mask_mod) -> str:
    if mask_mod is not None:
        return mask_mod.__name__.split("_")[0]  # divided_masks names them temporal_TxP / spatial_TxP
    return "cross" if q.shape[-2] == 1 and k.shape[-2] > 1 else "joint"


def capture(model, name: str, batch: dict) -> list[AttentionCase]:
    """The attention cases of `model` (registered as `name`) on `batch`, in the order first seen."""
    seen: dict[tuple, list] = {}

    def record(q, k, v, mask_mod):
        b, h, nq, d = q.shape
        key = (_kind(q, k, mask_mod), b, h, nq, k.shape[-2], d)
        if key in seen:
            seen[key][0] += 1
        else:
            seen[key] = [1, mask_mod]

    model.eval()
    with recording(record), torch.no_grad():
        model(batch)
    return [
        AttentionCase(name, kind, b, h, nq, nk, d, count, mask)
        for (kind, b, h, nq, nk, d), (count, mask) in seen.items()
    ]
