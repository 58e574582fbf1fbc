"""Timing an attention case with one kernel: checked against the written-out attention first (outputs, and
the gradients when the backward pass is timed), then the median of several calls (forward, or forward +
backward), as achieved GFLOP/s and a fraction of the matrix-product ceiling measured in the same run, and the
peak memory of one call. A kernel that cannot run a case is "unsupported", with the reason, not an error.

Times on a CPU are wall-clock (perf_counter); on CUDA, CUDA events around each call.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from hsta_bench.models import attention  # by module: its kernels are looked up per call (and replaced in tests)
from hsta_bench.profiling.kernels import backend_of, pinned, preflight
from hsta_bench.profiling.memory import peak_bytes

# largest difference from the written-out attention, relative to the largest value of the reference (or 1)
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 5e-3}


@dataclass
class Timing:
    case: str
    kind: str
    backend: str  # a kernel of kernels.py
    dtype: str
    passes: str  # forward | forward+backward
    status: str  # ok | unsupported: <why> | disagrees: <by how much>
    seconds: float | None = None  # median of the repeats
    spread: float | None = None  # their interquartile range over the median
    flops: int = 0  # of one call, dense
    flops_source: str = "analytic"  # or "torch FLOP counter"
    gflops_per_s: float | None = None
    ceiling_fraction: float | None = None
    ceiling_gflops: float | None = None  # the ceiling it was compared with (measured just before)
    max_error: float | None = None
    peak_bytes: int | None = None  # allocated by one call above its inputs


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


# A median is kept once its samples' interquartile range is within this fraction of it, or the time is spent
STABLE_SPREAD = 0.2
MORE_ROUNDS = 3  # ... at most this many more rounds, each doubling the samples


def median_seconds(fn, repeats: int = 5, warmup: int = 2, device: str = "cpu", min_seconds: float = 0.0) -> float:
    """Median time of `fn()` (timed_seconds, without its spread)."""
    return timed_seconds(fn, repeats, warmup, device, min_seconds)[0]


def timed_seconds(
    fn, repeats: int = 5, warmup: int = 2, device: str = "cpu", min_seconds: float = 0.0
) -> tuple[float, float]:
    """Median time of `fn()` and its spread (the interquartile range over the median), over `repeats` calls after
    `warmup` (on CUDA measured with CUDA events), or as many more calls as fill `min_seconds` (short calls are
    noisy; their median needs many of them); while the spread is above STABLE_SPREAD, up to MORE_ROUNDS rounds
    of as many calls again (a single slow call, a compilation or a busy machine, no longer sets the median)."""
    for _ in range(max(warmup, 1)):
        start = time.perf_counter()
        fn()
        if device != "cpu":
            torch.cuda.synchronize()
        estimate = time.perf_counter() - start
    repeats = max(repeats, min(math.ceil(min_seconds / max(estimate, 1e-7)), 10_000))
    times: list[float] = []
    for _ in range(1 + MORE_ROUNDS):
        times += _samples(fn, repeats if not times else len(times), device)
        median, spread = _spread(times)
        if spread <= STABLE_SPREAD or len(times) >= 10_000:
            break
    return median, spread


def _spread(times: list[float]) -> tuple[float, float]:
    """The median and the interquartile range over it (0 for fewer than 4 samples: too few to have quartiles,
    so what was asked for is what is taken)."""
    median = statistics.median(times)
    if len(times) < 4 or median <= 0:
        return median, 0.0
    q1, _, q3 = statistics.quantiles(times, n=4)
    return median, (q3 - q1) / median


def _samples(fn, n: int, device: str) -> list[float]:
    if device == "cpu":
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for begin, end in pairs:
        begin.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [begin.elapsed_time(end) / 1000 for begin, end in pairs]


def _call(case, kernel: str, backward: bool, dtype, device: str, seed: int = 0):
    """A function running the case once with `kernel` (and its backward pass, with a fixed output gradient),
    returning the output and the gradients of q, k, v."""
    q, k, v = case.inputs(dtype, device, requires_grad=backward, seed=seed)
    grad = (
        torch.randn(
            case.batch, case.heads, case.q_len, case.head_dim, generator=torch.Generator().manual_seed(seed + 1)
        ).to(device, dtype)
        if backward
        else None
    )
    backend = backend_of(kernel)

    def call():
        with pinned(kernel), torch.set_grad_enabled(backward):
            out = attention.attend(q, k, v, backend, case.mask_mod)
            if not backward:
                return [out]
            q.grad = k.grad = v.grad = None
            out.backward(grad)
            return [out, q.grad, k.grad, v.grad]

    return call


def agreement(case, kernel: str, backward: bool = False, dtype=None, device: str = "cpu") -> float:
    """Largest difference between `kernel` and the written-out attention in fp32 on the same inputs (outputs,
    and gradients with `backward`), relative to the reference's largest value (or 1); raises what the kernel
    raises where it cannot run the case."""
    dtype = dtype or torch.float32
    got = [t.detach().float() for t in _call(case, kernel, backward, dtype, device)()]
    want = [t.detach() for t in _call(case, "naive", backward, torch.float32, device)()]  # same seed: same inputs
    return max(float((g - w).abs().max()) / max(float(w.abs().max()), 1.0) for g, w in zip(got, want))


def counted_flops(fn) -> int:
    """FLOPs of `fn()` by torch's FLOP counter (0 where it sees none, e.g. a fused CPU kernel it has no formula for)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def time_case(
    case,
    kernel: str,
    backward: bool = False,
    dtype=None,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    ceiling_gflops: float | None = None,
    memory: bool = True,
    min_seconds: float = 0.0,
) -> Timing:
    """Check `kernel` on `case` against the written-out attention, then time it."""
    dtype = dtype or torch.float32
    name = dtype_name(dtype)
    timing = Timing(
        case.name,
        case.kind,
        kernel,
        name,
        "forward+backward" if backward else "forward",
        "ok",
        flops=case.flops(backward),
    )
    try:
        preflight(kernel, backward, device, dtype)
        timing.max_error = agreement(case, kernel, backward, dtype, device)
        if not timing.max_error <= TOLERANCE.get(name, 1e-4):  # also catches NaN
            timing.status = f"disagrees: {timing.max_error:.2g} from the written-out attention"
            return timing
        call = _call(case, kernel, backward, dtype, device)
        # the counter cannot trace through a compiled kernel (and leaves flex's compilation broken after trying)
        counted = counted_flops(call) if kernel != "flex" else 0
        if counted:
            timing.flops, timing.flops_source = counted, "torch FLOP counter"
        timing.seconds, timing.spread = timed_seconds(call, repeats, warmup, device, min_seconds)
        if memory:
            timing.peak_bytes = peak_bytes(call, device)
    except Exception as exc:  # noqa: BLE001 - whatever stops a kernel on a case is the reason it is unsupported
        forget_failed_compilation(kernel)
        timing.status = unsupported(exc)
        timing.seconds = None
        return timing
    timing.gflops_per_s = timing.flops / timing.seconds / 1e9
    if ceiling_gflops:
        timing.ceiling_gflops = ceiling_gflops
        timing.ceiling_fraction = timing.gflops_per_s / ceiling_gflops
    return timing


def forget_failed_compilation(kernel: str) -> None:
    """After flex fails anyway (kernels.preflight catches what it can first), its compiled function would run
    unfused from then on and be timed as flex: start its compilation afresh."""
    if kernel == "flex":
        attention.reset_flex()


def unsupported(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"unsupported: {type(exc).__name__}" + (f": {text.splitlines()[0][:160]}" if text else "")
