"""Timing a whole model: inference (a forward pass without gradients, eval mode) and a training step
(forward, cross-entropy, backward, an AdamW update, train mode), with each attention kernel.

FLOPs are torch's FLOP counter over one call with the written-out attention in fp32: the dense work of the
model (matrix products and convolutions), the same whichever kernel runs it, so achieved GFLOP/s compare.
bf16 runs under autocast, as training with mixed precision would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hsta_bench.models.attention import set_backend
from hsta_bench.profiling.kernels import backend_of, pinned, preflight
from hsta_bench.profiling.measure import (
    counted_flops,
    dtype_name,
    forget_failed_compilation,
    timed_seconds,
    unsupported,
)
from hsta_bench.profiling.memory import peak_bytes

MODES = ("inference", "train step")


@dataclass
class ModelTiming:
    model: str
    backend: str  # a kernel of kernels.py, or "-" for a model without attention
    dtype: str
    mode: str  # inference | train step
    batch: int
    status: str  # ok | unsupported: <why>
    seconds: float | None = None  # median of the repeats
    spread: float | None = None  # their interquartile range over the median
    flops: int = 0  # of one call (torch FLOP counter)
    samples_per_s: float | None = None
    gflops_per_s: float | None = None
    ceiling_fraction: float | None = None
    ceiling_gflops: float | None = None
    peak_bytes: int | None = None


def _caller(model, inputs: dict, mode: str, kernel: str, dtype, device: str):
    set_backend(model, backend_of(kernel))
    batch = next(iter(inputs.values())).shape[0]
    target = torch.arange(batch, device=device) % model.num_classes
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if mode == "train step" else None
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype is not torch.float32)

    def call():
        with pinned(kernel):
            if optimizer is None:
                model.eval()
                with torch.no_grad(), autocast:
                    return model(inputs)
            model.train()
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(inputs), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss

    return call


def model_flops(model, inputs: dict, mode: str, device: str = "cpu") -> int:
    return counted_flops(_caller(model, inputs, mode, "naive", torch.float32, device))


def time_model(
    name: str,
    model,
    inputs: dict,
    mode: str,
    kernel: str,
    dtype=None,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    flops: int = 0,
    ceiling_gflops: float | None = None,
    memory: bool = True,
    min_seconds: float = 0.0,
) -> ModelTiming:
    """Time `mode` of `model` on `inputs` with `kernel` ("-": a model without attention)."""
    dtype = dtype or torch.float32
    batch = next(iter(inputs.values())).shape[0]
    timing = ModelTiming(name, kernel, dtype_name(dtype), mode, batch, "ok", flops=flops)
    try:
        preflight(kernel, mode == "train step", device, dtype)
        call = _caller(model, inputs, mode, "sdpa" if kernel == "-" else kernel, dtype, device)
        out = call()
        if not bool(torch.isfinite(out).all()):
            timing.status = "unsupported: the output is not finite"
            return timing
        timing.seconds, timing.spread = timed_seconds(call, repeats, max(warmup - 1, 0), device, min_seconds)
        if memory:
            timing.peak_bytes = peak_bytes(call, device)
    except Exception as exc:  # noqa: BLE001 - a kernel that cannot run the model is reported, not raised
        forget_failed_compilation(kernel)
        timing.status, timing.seconds = unsupported(exc), None
        return timing
    timing.samples_per_s = batch / timing.seconds
    if flops:
        timing.gflops_per_s = flops / timing.seconds / 1e9
        if ceiling_gflops:
            timing.ceiling_gflops = ceiling_gflops
            timing.ceiling_fraction = timing.gflops_per_s / ceiling_gflops
    return timing
