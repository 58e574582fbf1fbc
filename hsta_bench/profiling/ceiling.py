"""The hardware's own ceiling, measured in the same run as what is compared with it: the FLOP rate (median) of a
square matrix product in a dtype on a device (a fused attention kernel is, at heart, matrix products)."""

from __future__ import annotations

import torch

from hsta_bench.profiling.measure import median_seconds


def matmul_ceiling(dtype=None, n: int = 2048, device: str = "cpu", repeats: int = 5, min_seconds: float = 0.5) -> float:
    """GFLOP/s of an n x n matrix product in `dtype` on `device`, now: the median over `repeats` products or as
    many as fill `min_seconds`, measured the way the kernels compared with it are (a lucky fastest product on a
    shared machine would make every fraction look worse than it is)."""
    dtype = dtype or torch.float32
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats, 1, device, min_seconds) / 1e9


def memory_bandwidth(device: str = "cpu", megabytes: int = 256, repeats: int = 3) -> float:
    """GB/s of copying a `megabytes` tensor on `device` (bytes read + bytes written), now, the median like the
    ceiling: with the ceiling it gives the balance point of the hardware (FLOPs per byte) below which a kernel
    waits on memory."""
    n = megabytes * 2**20 // 4
    a = torch.randn(n, device=device)
    b = torch.empty_like(a)
    return 2 * n * 4 / median_seconds(lambda: b.copy_(a), repeats, 1, device) / 1e9


def products_rate(case, dtype=None, device: str = "cpu", min_seconds: float = 0.2) -> float:
    """GFLOP/s of the case's own two matrix products alone (q k^T, inner dimension d; then weights x v, inner
    dimension Nk), batched as attention batches them: what its shapes allow, without the softmax in between.
    Skinny products (small d) run well below the square product's ceiling on most hardware."""
    dtype = dtype or torch.float32
    q, k, v = case.inputs(dtype, device)
    weights = torch.rand(case.batch, case.heads, case.q_len, case.kv_len, dtype=dtype, device=device)
    kt = k.transpose(-2, -1).contiguous()

    def products():
        torch.matmul(q, kt)
        torch.matmul(weights, v)

    return case.flops() / median_seconds(products, 5, 2, device, min_seconds) / 1e9
