"""Peak memory of a call: what it allocates above what was allocated when it started.

On CUDA that is the allocator's peak statistic. On a CPU torch keeps no such statistic, so the call is run
under torch's profiler with memory recording: every allocation and free is an event with its size, and the
peak is the highest running sum (the tensors torch allocates; not Python objects or the compiler's caches).
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch.profiler import ProfilerActivity, profile


def peak_bytes(fn, device: str = "cpu") -> int:
    if device != "cpu":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    running = peak = 0
    for event in events:
        running += event.nbytes()  # negative for a free
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def _quiet_stderr():
    """The profiler's C++ side writes a start and a stop line to file descriptor 2 each time; silence them."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
