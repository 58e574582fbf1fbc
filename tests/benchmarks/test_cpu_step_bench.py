"""Two CPU levers of a small-batch training step, each against torch's default in the same run: the
blocked dense layer (hsta_bench/models/blocked_linear.py) and flushing subnormal floats
(engine/device.precision). One thread, as a Ray trial of one CPU trains."""

from __future__ import annotations

import time

import torch

from hsta_bench.engine.batched import _plain_linear
from hsta_bench.models import create_model


def _best_of(fn, rounds: int = 3, steps: int = 10) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def test_dual_inception_step_with_its_dense_layer_blocked(timings):
    """Dual-Inception's training step at its recipe's batch 3 (fused Adam, as make_optimizer builds it):
    torch's nn.Linear (baseline) against the blocked layer the model uses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = {"flow": torch.rand(3, 3, 28, 28)}, torch.randint(0, 3, (3,))
        for label in ("baseline", "blocked"):
            torch.manual_seed(0)
            model = create_model("dual_inception", 3)
            if label == "baseline":
                model.classifier[0] = _plain_linear(model.classifier[0])
            opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

            def step(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()

            timings.record("dual_inception step, batch 3", label, _best_of(step))
    finally:
        torch.set_num_threads(threads)


def test_adam_step_over_subnormal_moments_flushed(timings):
    """A fused Adam step over Dual-Inception's 6.4 M weights where the moments of a third of them have
    decayed into the subnormal range (as those of units that never open do, late in training): as they
    are (baseline) against flushed to zero, as engine/device.precision does on a CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    n = 6_400_000
    weight = torch.nn.Parameter(torch.randn(n))
    opt = torch.optim.Adam([weight], lr=1e-4, fused=True)
    weight.grad = torch.zeros(n)
    weight.grad[: 2 * n // 3] = torch.randn(2 * n // 3) * 1e-3
    opt.step()
    state = opt.state[weight]

    def step():
        state["exp_avg"][2 * n // 3 :] = 1e-39  # each step starts from subnormal moments again
        state["exp_avg_sq"][2 * n // 3 :] = 1e-40
        opt.step()

    try:
        timings.record("adam, 1/3 subnormal moments", "baseline", _best_of(step))
        torch.set_flush_denormal(True)
        timings.record("adam, 1/3 subnormal moments", "flushed", _best_of(step))
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
