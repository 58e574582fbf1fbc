"""The blocked dense layer (hsta_bench/models/blocked_linear.py) is nn.Linear: the same outputs and
gradients where it computes in blocks, nn.Linear's own path everywhere else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hsta_bench.engine import device as dev
from hsta_bench.models import blocked_linear
from hsta_bench.models.blocked_linear import BlockedLinear


def _pair(bias: bool, in_features: int = 2048, out_features: int = 520):
    """A blocked layer and an nn.Linear with the same weights; 520 units: the last block is a partial one."""
    torch.manual_seed(0)
    blocked = BlockedLinear(in_features, out_features, bias=bias)
    plain = nn.Linear(in_features, out_features, bias=bias)
    plain.load_state_dict(blocked.state_dict())
    return blocked, plain


def _outputs_and_grads(layer: nn.Module, x: torch.Tensor, g: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.backward(g)
    return [out, x.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 3, blocked_linear.SMALL])
def test_the_blocked_products_equal_nn_linears(monkeypatch, bias, rows):
    monkeypatch.setattr(blocked_linear, "LARGE", 1)  # a test-sized weight still takes the blocked path
    calls = []
    apply = blocked_linear._Blocked.apply
    monkeypatch.setattr(blocked_linear._Blocked, "apply", lambda *a: calls.append(1) or apply(*a))
    blocked, plain = _pair(bias)
    x, g = torch.randn(rows, 2048), torch.randn(rows, 520)
    ours, theirs = _outputs_and_grads(blocked, x, g), _outputs_and_grads(plain, x, g)
    assert calls, "the blocked path was not taken"
    assert len(ours) == len(theirs) == (4 if bias else 3)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_it_is_nn_linear_for_many_rows_small_weights_other_devices_and_bf16(monkeypatch):
    calls = []
    apply = blocked_linear._Blocked.apply
    monkeypatch.setattr(blocked_linear._Blocked, "apply", lambda *a: calls.append(1) or apply(*a))
    big = BlockedLinear(1024, 1024)  # 1 M weights: large enough
    big(torch.randn(3, 1024))
    assert len(calls) == 1
    big(torch.randn(blocked_linear.SMALL + 1, 1024))  # many rows: one product amortises its packing
    BlockedLinear(64, 64)(torch.randn(3, 64))  # a small weight
    with torch.autocast("cpu", dtype=torch.bfloat16):
        big(torch.randn(3, 1024))
    on_meta = BlockedLinear(1024, 1024, device="meta")
    assert on_meta(torch.randn(3, 1024, device="meta")).shape == (3, 1024)
    assert len(calls) == 1
    assert set(big.state_dict()) == {"weight", "bias"}


def test_a_cpu_fold_flushes_subnormal_floats_and_restores_the_process_after():
    """engine/device.precision: subnormals read as zero while a CPU fold trains (Adam's moments of dead
    units would otherwise slow every step), and the process's own setting comes back after."""
    tiny = torch.tensor([1e-39, 1e-30])
    cpu = dev.Placement("cpu", "cpu", "fp32", "here")
    assert (tiny * 1.0)[0] > 0
    with dev.precision(cpu):
        flushed = tiny * 1.0
    assert flushed[0] == 0 and flushed[1] == pytest.approx(1e-30)
    assert (tiny * 1.0)[0] > 0
