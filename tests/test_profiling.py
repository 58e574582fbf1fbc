"""Attention cases read from the models themselves (profiling/cases.py): the kinds each model makes, FLOPs
that agree with torch's FLOP counter, and every backend agreeing with the written-out attention."""

from __future__ import annotations

import pytest
import torch

from hsta_bench.models import create_model, list_models, small_overrides
from hsta_bench.profiling.cases import AttentionCase, agreement, capture


def _cases(name: str) -> list[AttentionCase]:
    torch.manual_seed(0)
    model = create_model(name, 3, **small_overrides(name))
    return capture(model, name, model.example_input(2))


def _expected_kinds(name: str) -> set[str]:
    if name in ("ststnet", "off_apexnet", "c3d"):
        return set()  # convolutional: no attention
    if name == "timesformer":
        return {"temporal", "spatial"}
    if name.startswith("hsta") and ("no_csta" in name or "usta_only" in name):
        return {"joint"}
    return {"joint", "cross"} if name.startswith("hsta") else {"joint"}


@pytest.mark.parametrize("name", list_models())
def test_every_model_reports_its_attention_at_real_shapes_and_sdpa_agrees(name):
    cases = _cases(name)
    assert {c.kind for c in cases} == _expected_kinds(name)
    for case in cases:
        assert case.batch % 2 == 0 and case.count >= 1 and case.head_dim > 0  # HTNet: batch x its local blocks
        if case.kind == "cross":
            assert case.q_len == 1 and case.kv_len > 1
        else:
            assert case.q_len == case.kv_len
        assert agreement(case, "sdpa") < 1e-4, case.name


def test_divided_attention_is_masked_and_reports_its_density():
    temporal, spatial = sorted(_cases("timesformer"), key=lambda c: c.kind)[::-1]
    assert (temporal.kind, spatial.kind) == ("temporal", "spatial")
    frames, patches = map(int, temporal.mask_mod.__name__.split("_")[1].split("x"))
    n = 1 + frames * patches
    assert temporal.q_len == n
    # temporal: CLS with itself, each patch with its place in every frame; spatial: CLS with all, each patch
    # with its own frame
    assert temporal.density() == pytest.approx((1 + frames**2 * patches) / n**2)
    assert spatial.density() == pytest.approx((n + frames * patches + frames * patches**2) / n**2)
    assert 0 < temporal.density() < spatial.density() < 1


@pytest.mark.parametrize("backward", [False, True])
def test_analytic_flops_match_torchs_flop_counter(backward):
    from torch.utils.flop_counter import FlopCounterMode

    from hsta_bench.models.attention import attend

    (case,) = [c for c in _cases("hsta_tiny") if c.kind == "joint"][:1]
    q, k, v = case.inputs(requires_grad=backward)
    with FlopCounterMode(display=False) as counter:
        out = attend(q, k, v, "naive")
        if backward:
            out.sum().backward()
    assert counter.get_total_flops() == case.flops(backward)


def test_a_timing_checks_first_and_reports_rate_against_the_ceiling():
    from hsta_bench.profiling.measure import time_case

    case = [c for c in _cases("hsta_tiny") if c.kind == "joint"][0]
    t = time_case(case, "sdpa", backward=True, repeats=3, warmup=1, ceiling_gflops=100.0)
    assert t.status == "ok" and t.max_error < 1e-4 and t.passes == "forward+backward"
    assert t.flops == case.flops(True) and t.seconds > 0
    assert t.gflops_per_s == pytest.approx(t.flops / t.seconds / 1e9)
    assert t.ceiling_fraction == pytest.approx(t.gflops_per_s / 100.0)


def test_a_backend_that_cannot_run_or_disagrees_is_reported_not_timed(monkeypatch):
    from hsta_bench.models import attention
    from hsta_bench.profiling import measure

    case = [c for c in _cases("hsta_tiny") if c.kind == "cross"][0]
    original = attention.attend

    def broken(q, k, v, backend_name, mask_mod=None):
        if backend_name == "flex":
            raise NotImplementedError("no kernel for this shape")
        out = original(q, k, v, backend_name, mask_mod)
        return out + 1 if backend_name == "sdpa" else out

    monkeypatch.setattr(attention, "attend", broken)
    flex = measure.time_case(case, "flex")
    assert flex.status == "unsupported: NotImplementedError: no kernel for this shape" and flex.seconds is None
    sdpa = measure.time_case(case, "sdpa")
    assert sdpa.status.startswith("disagrees: 1") and sdpa.seconds is None
