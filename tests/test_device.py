"""Device placement and precision, proven without a GPU (engine/device.py).

Training on the `meta` device (tensors with shapes and no data) runs every op of a step as a GPU would,
and anything that makes the host wait for the device (`.item()`, `bool(tensor)`, a copy back) raises, since
meta has no data. Meta itself catches only some host tensors mixed with the device's: an elementwise op on a
CPU tensor and a meta one raises ("not on the expected device": the stacked optimiser's step counts did),
but a CPU index (`x[cpu_long]`, `index_select`), a CPU mask (`x[cpu_bool]`) or `x[cpu_index] = v` pass
silently, where CUDA would copy the index from the host in every step, or refuse it. So the step runs
under `HostTensorsFlagged`, which raises on any op given a host tensor beside device tensors. It lets
through the transfers themselves (`.to(device)`, `copy_`) and 0-dim CPU tensors, which CUDA takes as scalar
arguments read on the host (no copy, no wait). So a step that runs here mixes no devices and has no host sync.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from hsta_bench.engine import device as dev
from hsta_bench.engine.batched import StackedOptimizer, StackedTrainer
from hsta_bench.engine.train import FoldData, FoldTrainer, Inputs, fit_predict, train_config
from hsta_bench.errors import UserError
from hsta_bench.models import create_model, list_models, model_class, small_overrides

META = dev.Placement("meta", "meta", "fp32", "here")
# ops that move data between devices: a host tensor is what they are for
TRANSFERS = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default, torch.ops.aten.lift_fresh.default}


class HostTensorsFlagged(TorchDispatchMode):
    """Raise where an op gets a host tensor (on the CPU, not 0-dim) beside tensors on another device."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in TRANSFERS:
            tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            host = [t for t in tensors if t.device.type == "cpu" and t.dim() > 0]
            if host and any(t.device.type != "cpu" for t in tensors):
                raise RuntimeError(
                    f"{func}: a host tensor {tuple(host[0].shape)} {host[0].dtype} mixed with device tensors"
                )
        return func(*args, **kwargs)


FOLD_BATCHABLE = [m for m in list_models() if model_class(m).fold_batchable]


def _on_meta(name: str):
    """A builder of `name` (small inputs) whose parameters are made on meta directly (no CPU init)."""

    def build():
        with torch.device("meta"):
            return create_model(name, 3, **small_overrides(name))

    return build


def _data(name: str, n: int = 12) -> FoldData:
    """A fold of zeros shaped as `name` takes them (uint8 arrays, as the cache holds them)."""
    with torch.device("meta"):
        inputs = create_model(name, 3, **small_overrides(name)).inputs
    arrays = {kind: np.zeros((n, *shape[1:], 3), np.uint8) for kind, shape in inputs.items()}
    y = np.arange(n) % 3
    return FoldData(Inputs(arrays), np.arange(8), y[:8], np.zeros(0, int), np.zeros(0, int), np.arange(8, n))


@pytest.mark.parametrize(
    "mix",
    [
        lambda x: x[torch.tensor([0, 2])],  # a CPU index
        lambda x: x[torch.tensor([True, False, True, False])],  # a CPU mask
        lambda x: x.index_select(0, torch.tensor([1])),
        lambda x: x.index_put_((torch.tensor([0]),), torch.ones((), device=x.device)),
    ],
    ids=["index", "mask", "index_select", "index_put"],
)
def test_a_host_tensor_mixed_with_meta_ones_is_flagged_though_meta_lets_it_pass(mix):
    x = torch.zeros(4, 3, device="meta")
    mix(x)  # meta alone: no error (what the guard is for)
    with pytest.raises(RuntimeError, match="a host tensor"), HostTensorsFlagged():
        mix(x)
    with HostTensorsFlagged():  # the same on the device: fine; so are transfers and 0-dim scalars
        mix(torch.zeros(4, 3)).to("meta")
        x * torch.tensor(2.0) + torch.tensor([1.0, 2.0, 3.0]).to("meta")


def test_a_training_step_that_leaves_its_flip_mask_on_the_host_is_flagged(monkeypatch):
    """A mutant of the trainer: the flips' mask (drawn on the host from the fold's generator) used where it
    is, not moved to the device first. Meta alone lets it pass; the meta training test below fails on it."""
    from hsta_bench.engine import train as train_mod
    from hsta_bench.models.inputs import mirror

    def flip_with_host_mask(batch, which, encoding=None):
        out = {}
        for kind, x in batch.items():
            out[kind] = x.clone()
            out[kind][which] = mirror(kind, x, "default")[which]
        return out

    monkeypatch.setattr(train_mod, "flip", flip_with_host_mask)
    cfg = train_config(batch_size=4, epochs=2, augment=True)
    FoldTrainer(_on_meta("ststnet"), _data("ststnet"), cfg, 3, seed=0, placement=META).train_epoch()  # unflagged
    with pytest.raises(RuntimeError, match="a host tensor"):
        _train_one_epoch_on_meta("ststnet", "device")


def _train_one_epoch_on_meta(name: str, staging: str) -> FoldTrainer:
    cfg = train_config(batch_size=4, epochs=2, augment=True, balanced=True, warmup_epochs=1, staging=staging)
    trainer = FoldTrainer(_on_meta(name), _data(name), cfg, 3, seed=0, placement=META)
    with HostTensorsFlagged():
        trainer.train_epoch()
    return trainer


@pytest.mark.parametrize("staging", ["device", "host"])
@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_a_fold_on_a_non_cpu_device_without_mixing_or_waiting(name, staging):
    """FoldTrainer (what `run` and `tune` train folds with): balanced sampling, flips, warm-up, the fused
    optimiser's path; inputs staged on the device or copied from the host per batch."""
    trainer = _train_one_epoch_on_meta(name, staging)
    assert trainer.step == 2 and all(p.device.type == "meta" for p in trainer.model.parameters())
    assert trainer.feed.staging == staging and (trainer.feed.staged is not None) == (staging == "device")


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("name", FOLD_BATCHABLE)
def test_fold_batched_training_runs_on_a_non_cpu_device(name, optimizer):
    """The stacked computation (every fold of STSTNet / Off-ApexNet at once, what `fold_batch: auto` uses
    on CUDA): before the step counts of its optimiser lived with the parameters, this failed on the first
    step ("Tensor on device cpu is not on the expected device meta!")."""
    data = _data(name)
    cfg = train_config(optimizer=optimizer, batch_size=4, epochs=2, augment=True, weight_decay=0.01)
    small = FoldData(data.inputs, np.arange(5), data.train_labels[:5], data.val, data.val_labels, data.test)
    trainer = StackedTrainer(_on_meta(name), [data, small], cfg, 3, seeds=[0, 1], placement=META)
    with HostTensorsFlagged():
        trainer.train_epoch()
    assert trainer.optimizer.steps.device.type == "meta"
    assert trainer.steps == [2, 1] and trainer.epoch == 1  # 8 samples: 4 + 4; 5: one batch of 5 (no batch of one)


def test_the_stacked_optimiser_keeps_its_state_on_the_parameters_device():
    params = {"w": torch.zeros(3, 4, 5, device="meta", requires_grad=True)}
    opt = StackedOptimizer(params, train_config(optimizer="adamw"), {"w": 0.1})
    params["w"].grad = torch.zeros(3, 4, 5, device="meta")
    opt.step(torch.ones(3, dtype=torch.bool, device="meta"), torch.ones(3, device="meta"))
    assert {t.device.type for t in (opt.steps, opt.m["w"], opt.v["w"])} == {"meta"}


def test_a_trial_trains_where_ray_puts_it():
    resolve = dev.resolve_device
    assert resolve("auto", granted=(), cuda_available=True) == "cpu"  # Ray gave it no GPU: the CPU, even where one is
    assert resolve("auto", granted=("1",), cuda_available=True, visible="1") == "cuda:0"  # Ray hid the others
    assert resolve("auto", granted=("1",), cuda_available=True, visible="0,1") == "cuda:1"
    assert resolve("auto", granted=("3",), cuda_available=True, visible="") == "cuda:3"  # Ray set nothing
    assert resolve("cpu", granted=("0",), cuda_available=True) == "cpu"  # asked for explicitly
    assert resolve("auto", granted=None, cuda_available=False) == "cpu"  # outside Ray: what this process sees
    assert resolve("auto", granted=None, cuda_available=True) == "cuda:0"
    with pytest.raises(dev.DeviceError, match="granted GPU 0 .* sees no CUDA device"):
        resolve("auto", granted=("0",), cuda_available=False)
    with pytest.raises(dev.DeviceError, match="granted no GPU"):
        resolve("cuda", granted=(), cuda_available=True)
    with pytest.raises(dev.DeviceError, match="train.device=cuda"):
        resolve("cuda", granted=None, cuda_available=False)


def test_precision_is_fp32_on_a_cpu_unless_bf16_is_asked_for():
    assert [dev.resolve_precision(p, "cpu") for p in ("auto", "fp32", "tf32", "bf16")] == [
        "fp32",
        "fp32",
        "fp32",
        "bf16",
    ]
    assert dev.resolve_precision("bf16", "meta") == "fp32"
    with pytest.raises(UserError, match="train.precision='fp16'"):
        dev.resolve_precision("fp16", "cpu")
    with pytest.raises(
        UserError, match=r"train.precision: Input should be 'auto', 'fp32', 'tf32' or 'bf16' \(got 'half'\)"
    ):
        train_config(precision="half")


@pytest.mark.parametrize("bf16,major,expected", [(True, 9, "bf16"), (False, 8, "tf32"), (False, 7, "fp32")])
def test_auto_precision_on_cuda_follows_what_the_gpu_has(monkeypatch, bf16, major, expected):
    """auto: bf16 where the GPU computes it natively, else TF32 where the GPU has it (Ampere on), else fp32
    (torch's answers stood in for: no GPU here)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (major, 0))
    assert dev.resolve_precision("auto", "cuda:0") == expected
    assert dev.resolve_precision("fp32", "cuda:0") == "fp32" and dev.resolve_precision("bf16", "cuda:1") == "bf16"


def test_bf16_autocasts_the_training_step_on_a_cpu():
    """precision=bf16 really trains in bfloat16 (the matrix products' outputs), fp32 does not."""
    seen = []
    data = _data("ststnet", 16)

    def build():
        model = create_model("ststnet", 3)
        model.fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        return model

    for precision in ("bf16", "fp32"):
        seen.clear()
        cfg = train_config(batch_size=8, epochs=1, precision=precision, device="cpu")
        trainer = FoldTrainer(build, data, cfg, 3, seed=0)
        trainer.train_epoch()
        assert trainer.placement.precision == precision
        assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (HSTA_BENCH_TEST_CUDA=1 on a GPU)")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("name", FOLD_BATCHABLE)
def test_fold_batched_equals_one_fold_at_a_time_on_cuda(name):
    """As test_engine's CPU test, on CUDA in fp32 with TF32 off: the stacked models are the one-by-one models."""
    from test_engine import ragged_folds, without_dropout

    folds, cfg = ragged_folds(precision="fp32", device="cuda")
    build = without_dropout(name)
    from hsta_bench.engine.batched import fit_predict_folds

    plain = [fit_predict(build, f, cfg, 3, seed=20 + i) for i, f in enumerate(folds)]
    stacked = fit_predict_folds(build, folds, cfg, 3, seeds=[20, 21, 22])
    for a, b in zip(plain, stacked):
        assert np.allclose(a.logits, b.logits, atol=1e-4), np.abs(a.logits - b.logits).max()


@pytest.mark.slow
def test_compile_trains_the_compiled_model_to_the_same_predictions():
    """train.compile: the fold trains through torch.compile's graph (inductor, here on the CPU: ~30 s of
    compiling) and predicts as the eager model does, to float rounding (without dropout: compiled code draws
    its random numbers its own way)."""
    data = _data("ststnet", 24)
    rng = np.random.default_rng(0)
    data.inputs.arrays["flow"][:] = rng.integers(0, 255, data.inputs.arrays["flow"].shape, dtype=np.uint8)
    out = {}
    for compiled in (False, True):
        cfg = train_config(batch_size=4, epochs=1, compile=compiled, device="cpu")
        trainer = FoldTrainer(lambda: create_model("ststnet", 3, dropout=0.0), data, cfg, 3, seed=0)
        trainer.train_epoch()
        assert (type(trainer.forward).__name__ == "OptimizedModule") == compiled
        out[compiled] = trainer.predict(data.test)
    assert np.allclose(out[True], out[False], atol=1e-4)
