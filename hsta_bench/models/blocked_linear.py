"""A dense layer whose matrix products, for a few rows on a CPU, are done in blocks of output units.

Why: with a handful of rows (Dual-Inception trains at batch 3) and a large weight (its 6,272 x 1,024 dense
layer, 25.7 MB), MKL's matrix product copies ("packs") the whole weight before using it, so each of the
layer's three products (the forward, the weight's gradient, the input's gradient) streams the weight from
memory about three times. Done for BLOCK output units at a time, the piece being packed stays in the
core's cache. Measured on this project's 2-core AMD EPYC (one thread, torch 2.13, MKL 2024.2): the three
products at batch 3 take 5.6 ms instead of 9.4, and a Dual-Inception training step 20.5 ms instead of 26
(tests/benchmarks/test_blocked_linear_bench.py). The result is the same product: each output unit is
still one dot product over every input, in MKL's order; only the input's gradient sums the blocks' parts
in turn (tests/test_blocked_linear.py compares all three with nn.Linear's).

Elsewhere (a GPU, the meta device, more than SMALL rows, a weight too small to matter) it is nn.Linear
unchanged: the state dict, initialisation and parameter count are nn.Linear's.
"""

from __future__ import annotations

import torch
from torch import nn

BLOCK = 32  # output units per product: 32 x 6,272 floats (0.8 MB) fits the 1-2 MB of L2 a core has
SMALL = 16  # rows up to which blocks pay (a matrix product over more rows amortises its packing)
LARGE = 1 << 20  # weights (elements) from which they pay: below, the packed weight is in cache anyway


class _Blocked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.cat([x @ w.t() for w in weight.split(BLOCK)], dim=1)
        return torch.cat([torch.addmm(b, x, w.t()) for w, b in zip(weight.split(BLOCK), bias.split(BLOCK))], dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(weight)
            for g, out in zip(grad.t().split(BLOCK), grad_w.split(BLOCK)):
                torch.mm(g, x, out=out)
        if ctx.needs_input_grad[0]:
            for g, w in zip(grad.split(BLOCK, dim=1), weight.split(BLOCK)):
                grad_x = g @ w if grad_x is None else torch.addmm(grad_x, g, w)  # not addmm_: FLOPs counted
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b


class BlockedLinear(nn.Linear):
    """nn.Linear, computed in blocks of output units where that is faster (see the module's docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dim() == 2
            and x.shape[0] <= SMALL
            and self.weight.numel() >= LARGE
            and x.dtype == self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
        ):
            return _Blocked.apply(x.contiguous(), self.weight, self.bias)
        return super().forward(x)
