"""The hardware's own ceiling, measured in the same run as what is compared with it: the best FLOP rate of a
square matrix product in a dtype on a device (a fused attention kernel is, at heart, matrix products)."""

from __future__ import annotations

import time


def matmul_ceiling(dtype=None, n: int = 2048, device: str = "cpu", repeats: int = 3) -> float:
    """Best GFLOP/s of an n x n matrix product in `dtype` on `device`, now (after one warm-up product)."""
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
