"""Which frames a clip contributes: N in order from onset..offset, the way HSTA's release takes them.

The offset is capped at onset + max_span. A clip with at least N readable frames in that span gives N
evenly spaced ones; a shorter clip gives all of them, padded by repeating its last frame. With
temporal interpolation, N evenly spaced (fractional) positions blend their two neighbouring frames.
"""

from __future__ import annotations

import numpy as np


def span(numbers: list[int], onset: int, offset: int, max_span: int) -> list[int]:
    """The readable frame numbers from onset to min(offset, onset + max_span), in order."""
    last = min(offset, onset + max_span)
    return [n for n in numbers if onset <= n <= last]


def pick(available: list[int], n: int) -> list[int]:
    """`n` frame numbers from `available` (in order): evenly spaced, or padded with the last one."""
    if not available:
        raise ValueError("no frames to sample from")
    if len(available) < n:
        return available + [available[-1]] * (n - len(available))
    positions = np.rint(np.linspace(0, len(available) - 1, n)).astype(int)
    return [available[i] for i in positions]


def blend_plan(available: list[int], n: int) -> list[tuple[int, int, float]]:
    """For interpolation: per output frame, (frame a, frame b, weight of b) over `available`."""
    if len(available) == 1:
        return [(available[0], available[0], 0.0)] * n
    plan = []
    for x in np.linspace(0, len(available) - 1, n):
        i = min(int(np.floor(x)), len(available) - 2)
        plan.append((available[i], available[i + 1], float(x - i)))
    return plan
