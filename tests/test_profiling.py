"""Attention cases read from the models themselves (profiling/cases.py): the kinds each model makes, FLOPs
that agree with torch's FLOP counter, and every backend agreeing with the written-out attention."""

from __future__ import annotations

import time

import pytest
import torch

from hsta_bench.models import create_model, list_models, small_overrides
from hsta_bench.profiling.cases import AttentionCase, capture
from hsta_bench.profiling.measure import agreement


def _cases(name: str) -> list[AttentionCase]:
    torch.manual_seed(0)
    model = create_model(name, 3, **small_overrides(name))
    return capture(model, name, model.example_input(2))


def _expected_kinds(name: str) -> set[str]:
    # convolutional: no attention (the RCNs' class maps are no query-key attention); tiny_flow_net is
    # examples/my_mer_model's
    if name in ("ststnet", "off_apexnet", "c3d", "dual_inception", "tiny_flow_net") or name.startswith("rcn_"):
        return set()
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


def test_a_wrong_gradient_is_caught_before_the_backward_pass_is_timed(monkeypatch):
    from hsta_bench.models import attention
    from hsta_bench.profiling import measure

    case = [c for c in _cases("hsta_tiny") if c.kind == "joint"][0]
    original = attention.attend

    def doubled_gradient(q, k, v, backend_name, mask_mod=None):
        out = original(q, k, v, backend_name, mask_mod)
        return out + (out - out.detach()) if backend_name == "sdpa" else out  # same values, twice the gradient

    monkeypatch.setattr(attention, "attend", doubled_gradient)
    assert measure.time_case(case, "sdpa", backward=False, repeats=1).status == "ok"
    wrong = measure.time_case(case, "sdpa", backward=True, repeats=1)
    assert wrong.status.startswith("disagrees") and wrong.seconds is None


def test_short_calls_are_repeated_until_they_fill_the_minimum_time():
    from hsta_bench.profiling.measure import median_seconds

    calls = []
    median_seconds(lambda: calls.append(1), repeats=3, warmup=2, min_seconds=0)
    assert len(calls) == 5
    calls.clear()
    median_seconds(lambda: (calls.append(1), time.sleep(0.002)), repeats=3, warmup=1, min_seconds=0.06)
    assert 10 <= len(calls) <= 32  # about 0.06 s / 2 ms calls, never fewer than asked


def test_peak_memory_sees_the_written_out_scores_and_the_fused_kernel_avoid_them():
    from hsta_bench.profiling.measure import _call
    from hsta_bench.profiling.memory import peak_bytes

    case = AttentionCase("m", "joint", 2, 4, 512, 512, 32)
    scores = case.batch * case.heads * case.q_len * case.kv_len * 4
    assert peak_bytes(_call(case, "naive", False, torch.float32, "cpu")) >= scores
    assert peak_bytes(_call(case, "sdpa", False, torch.float32, "cpu")) < scores / 4


def test_pinned_kernels_run_through_sdpa_or_are_unsupported():
    from hsta_bench.profiling import kernels
    from hsta_bench.profiling.measure import time_case

    case = AttentionCase("k", "joint", 1, 2, 16, 16, 8)
    assert time_case(case, "sdpa-math", repeats=1).status == "ok"
    if not torch.cuda.is_available():
        assert time_case(case, "sdpa-cudnn", repeats=1).status.startswith("unsupported: RuntimeError")
    with pytest.raises(ValueError, match="not one of"):
        kernels.backend_of("sdpa-fast")


def _verdicts(seconds: dict, ceilings=100.0, bandwidth=10.0, floor=1e-6):
    """Findings of a profile made by hand: ceiling 100 GFLOP/s, 10 GB/s (balance 10 FLOP/byte)."""
    from hsta_bench.profiling.measure import Timing
    from hsta_bench.profiling.report import findings
    from hsta_bench.profiling.session import Profile, Settings

    s = Settings(
        "paper", ["m"], ["naive", "sdpa"], ["fp32"], "cpu", 2, 1, 0, ["forward"], False, False, 0.0, 0.5, 2048, False
    )
    profile = Profile(s, {}, ceilings={"fp32": ceilings}, bandwidth=bandwidth, floors={"forward": floor})
    profile.cases = [
        AttentionCase("m", "joint", 2, 8, 512, 512, 64),
        AttentionCase("m", "cross", 2, 8, 1, 512, 64),
        AttentionCase("m", "joint", 1, 1, 8, 8, 8),
    ]
    for case in profile.cases:
        for kernel in ("naive", "sdpa"):
            t = Timing(
                case.name,
                case.kind,
                kernel,
                "float32",
                "forward",
                "ok",
                seconds=seconds[kernel] * case.flops() / 1e11,
                flops=case.flops(),
            )
            t.gflops_per_s = t.flops / t.seconds / 1e9
            t.ceiling_fraction = t.gflops_per_s / ceilings
            profile.attention.append(t)
    return findings(profile)  # in the order of the cases


def test_findings_judge_compute_bound_cases_against_the_goal_and_explain_the_others():
    # "seconds" are multiples of the time at the ceiling: sdpa at 1/0.8 = 80% of the ceiling, naive at 25%
    big, cross, tiny = _verdicts({"naive": 4.0, "sdpa": 1.25})
    assert (big["bound"], big["kernel"], big["met"]) == ("compute", "sdpa", True)
    assert big["fraction"] == pytest.approx(0.8)
    assert cross["bound"] == "memory" and cross["met"] is None and "FLOP/byte" in cross["text"]  # 1 query: ~0.5
    assert tiny["bound"] == "overhead" and "µs at the ceiling" in tiny["text"]  # 0.02 µs of arithmetic
    slow = _verdicts({"naive": 4.0, "sdpa": 2.5})[0]  # sdpa at 40%: the goal is not met, and it says so
    assert slow["met"] is False and "NOT met" in slow["text"]


def test_a_failed_flex_compilation_is_forgotten_before_the_next_case(monkeypatch):
    # torch runs a function whose compilation failed unfused from then on, silently: flex would be timed as the
    # written-out attention for every later case (seen: 589x589 at 175 ms and 110 MB instead of 45 ms and 17 MB)
    from hsta_bench.models import attention
    from hsta_bench.profiling import measure

    resets = []
    monkeypatch.setattr(attention, "reset_flex", lambda: resets.append(1))

    def no_backward(q, k, v, backend_name, mask_mod=None):
        raise NotImplementedError("FlexAttention does not support backward on CPU")

    monkeypatch.setattr(attention, "attend", no_backward)
    case = AttentionCase("f", "joint", 1, 1, 8, 8, 8)
    assert measure.time_case(case, "sdpa", backward=True).status.startswith("unsupported")
    assert resets == []  # only flex compiles
    assert measure.time_case(case, "flex", backward=True).status.startswith("unsupported")
    assert resets == [1]


def test_flex_backward_is_asked_of_the_uncompiled_kernel_before_the_compiled_one(monkeypatch):
    from hsta_bench.models import attention
    from hsta_bench.profiling import measure
    from hsta_bench.profiling.kernels import preflight

    def compiled():
        raise AssertionError("the compiled flex was called")

    monkeypatch.setattr(attention, "_compiled_flex", compiled)
    monkeypatch.setattr(attention, "reset_flex", lambda: None)
    case = AttentionCase("f", "joint", 1, 1, 8, 8, 8)
    timing = measure.time_case(case, "flex", backward=True)
    try:
        preflight("flex", True, "cpu")
    except NotImplementedError:  # torch 2.13 on a CPU: no backward; said without touching the compiled kernel
        assert timing.status.startswith("unsupported: NotImplementedError") and "compiled" not in timing.status
    else:
        assert "the compiled flex was called" in timing.status


def test_the_progress_total_is_the_number_of_measurements_made():
    from hsta_bench import config
    from hsta_bench.profiling import session

    s = session.settings(config.load(None, (), ()), "smoke", ["hsta_tiny", "ststnet"], ["naive", "sdpa"], repeats=1)
    s.passes, s.memory, s.min_seconds, s.warmup = ["forward"], False, 0.0, 1
    steps, totals = [], []
    profile = session.run(s, steps.append, totals.append)
    cases = [c for c in profile.cases if c.model == "hsta_tiny"]
    # the ceiling, cases x kernels, hsta_tiny's two modes x kernels, ststnet's two modes once each (no attention)
    assert totals == [len(steps)] == [1 + len(cases) * 2 + 2 * 2 + 2]
    assert len(profile.attention) == len(cases) * 2 and len(profile.models) == 2 * 2 + 2


def test_a_noisy_median_is_measured_again_until_its_spread_is_small():
    from hsta_bench.profiling.measure import STABLE_SPREAD, timed_seconds

    calls = []

    def call():  # two slow calls among the first five timed (a busy moment), fast ever after
        calls.append(1)
        time.sleep(0.006 if len(calls) in (3, 5) else 0.001)

    median, spread = timed_seconds(call, repeats=5, warmup=1, min_seconds=0)
    assert len(calls) > 6  # measured again: the first five alone had a wide spread
    assert median < 0.003 and spread <= STABLE_SPREAD


def test_no_attention_share_above_the_whole_step_is_shown():
    from types import SimpleNamespace

    from hsta_bench.profiling.measure import Timing
    from hsta_bench.profiling.report import model_rows, withheld_shares
    from hsta_bench.profiling.steps import ModelTiming

    def attention(model, seconds):
        return Timing(f"{model}/joint", "joint", "sdpa", "torch.float32", "forward", "ok", seconds=seconds)

    def step(model, seconds):
        return ModelTiming(model, "sdpa", "torch.float32", "inference", 2, "ok", seconds=seconds)

    profile = SimpleNamespace(
        cases=[SimpleNamespace(name="a/joint", count=4), SimpleNamespace(name="b/joint", count=4)],
        attention=[attention("a", 0.001), attention("b", 0.01)],  # b's four calls alone: 40 ms
        models=[step("a", 0.01), step("b", 0.02)],  # b's whole step: 20 ms
    )
    rows = {r["model"]: r for r in model_rows(profile)}
    assert rows["a"]["attention_share"] == pytest.approx(0.4)
    assert rows["b"]["attention_share"] is None and rows["b"]["attention_over"]
    assert withheld_shares(profile) == 1
    assert all(r["attention_share"] is None or r["attention_share"] <= 1 for r in rows.values())
