"""Timing an attention case with one backend: checked against the written-out attention first, then the
median of several calls (forward, or forward + backward), as achieved GFLOP/s and a fraction of the
matrix-product ceiling measured in the same run. A backend that cannot run a case is "unsupported", with
the reason, not an error.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 5e-3}  # largest absolute difference from naive


@dataclass
class Timing:
    case: str
    kind: str
    backend: str
    dtype: str
    passes: str  # forward | forward+backward
    status: str  # ok | unsupported: <why> | disagrees: <by how much>
    seconds: float | None = None  # median of the repeats
    flops: int = 0  # analytic, dense (cases.py)
    gflops_per_s: float | None = None
    ceiling_fraction: float | None = None
    max_error: float | None = None


def median_seconds(fn, repeats: int = 5, warmup: int = 2, device: str = "cpu") -> float:
    """Median wall time of `fn()` over `repeats` calls after `warmup` (CUDA work is waited for)."""
    import torch

    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_case(case, backend: str, backward: bool = False, dtype=None, device: str = "cpu", repeats: int = 5,
              warmup: int = 2, ceiling_gflops: float | None = None) -> Timing:
    """Check `backend` on `case` against the written-out attention, then time it."""
    import torch

    from hsta_bench.models.attention import attend
    from hsta_bench.profiling.cases import agreement

    dtype = dtype or torch.float32
    name = str(dtype).removeprefix("torch.")
    timing = Timing(case.name, case.kind, backend, name, "forward+backward" if backward else "forward", "ok",
                    flops=case.flops(backward))
    try:
        timing.max_error = agreement(case, backend, dtype, device)
    except Exception as exc:  # noqa: BLE001 - whatever stops a kernel on a case is the reason it is unsupported
        timing.status = f"unsupported: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return timing
    if not timing.max_error <= TOLERANCE.get(name, 1e-4):  # also catches NaN
        timing.status = f"disagrees: {timing.max_error:.2g} from the written-out attention"
        return timing
    q, k, v = case.inputs(dtype, device, requires_grad=backward)

    def call():
        out = attend(q, k, v, backend, case.mask_mod)
        if backward:
            out.backward(torch.ones_like(out))
        return out

    if backward:
        timing.seconds = median_seconds(call, repeats, warmup, device)
    else:
        with torch.no_grad():
            timing.seconds = median_seconds(call, repeats, warmup, device)
    timing.gflops_per_s = timing.flops / timing.seconds / 1e9
    if ceiling_gflops:
        timing.ceiling_fraction = timing.gflops_per_s / ceiling_gflops
    return timing
