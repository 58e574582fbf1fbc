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
    assert 0 < temporal.density() < spatial.density() < 1
    assert agreement(temporal, "naive") == 0.0


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
