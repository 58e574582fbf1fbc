"""Where and how a fold trains: the one place that decides the device, the precision and the process
settings that go with them, and what it decided, recorded with every fold.

A fold trains on the device its trial was given, not on what the driver or the trial happens to see:
- in a Ray trial (`granted` = the GPU ids Ray gave it): GPUs granted -> CUDA, on the first of them;
  none granted -> the CPU, explicitly. Ray 2.60 no longer hides the GPUs from a trial that asked for none,
  so "CUDA is available" says nothing about what a trial may use;
- outside Ray (`--in-process`, tests, `evaluate`): CUDA when this process sees it, else the CPU;
- `train.device: cpu` always trains on the CPU; `cuda` insists on a GPU (one line if there is none).
Precision (`train.precision`): fp32 (TF32 off, also in cuDNN), tf32 (TF32 matrix products and
convolutions on CUDA), bf16 (autocast to bfloat16, TF32 for what stays in fp32), auto (bf16 where the
device supports it, fp32 on a CPU: CPU results stay bit-identical). On CUDA cuDNN autotunes
(`cudnn.benchmark`), and a trial holding a fraction of a GPU may allocate only that fraction of its memory,
so trials sharing a GPU cannot starve one another (one fails, with a line naming the setting to raise).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import typing
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch

from hsta_bench.errors import UserError

Precision = Literal["auto", "fp32", "tf32", "bf16"]  # train.precision
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


class DeviceError(UserError):
    """A trial that cannot have the device it was asked for (raised where the trial runs)."""


@dataclass(frozen=True)
class Placement:
    device: str  # a torch device: cpu, cuda:0, meta (tests)
    name: str  # what it is: the GPU's name, or the CPU's and the threads used
    precision: str  # fp32 | tf32 | bf16, as resolved on this device
    node: str  # the host the fold trained on
    gpu_ids: tuple[str, ...] = ()  # the GPUs Ray granted the trial (empty: none, or not in Ray)
    gpu_share: float = 0.0  # the trial's share of one GPU (0: none or not in Ray)
    ray_node: str = ""  # the Ray node id (hosts of a cluster simulated on one machine share a name)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def type(self) -> str:
        return self.torch_device.type

    def record(self) -> dict:
        """What a fragment and run.json keep of it."""
        return {**asdict(self), "gpu_ids": ",".join(self.gpu_ids)}

    def describe(self) -> str:
        return f"{self.device} ({self.name}), {self.precision}"


def granted_gpus() -> tuple[str, ...] | None:
    """The GPU ids Ray granted this process (a trial's actor), or None outside a Ray worker."""
    try:
        import ray  # noqa: PLC0415 - probed: a machine that only profiles (a lent GPU) may lack Ray
    except ImportError:
        return None
    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    return tuple(str(i) for i in ray.get_gpu_ids())


def cuda_index(granted: tuple[str, ...], visible: str | None) -> int:
    """The torch index of the first granted GPU: its position in CUDA_VISIBLE_DEVICES where Ray set it
    (it lists exactly the granted ids), else the id itself."""
    listed = [v.strip() for v in (visible or "").split(",") if v.strip()]
    return listed.index(granted[0]) if granted[0] in listed else int(granted[0])


def resolve_device(
    requested: str,
    granted: tuple[str, ...] | None = None,
    cuda_available: bool | None = None,
    visible: str | None = None,
) -> str:
    """The device a fold trains on (see the module's docstring); `granted` is None outside Ray."""
    if requested in ("cpu", "meta"):  # meta: shapes without data, how the tests prove device placement
        return requested
    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if granted is not None and not granted:
        if requested == "cuda":
            raise DeviceError(
                "train.device=cuda, but this trial was granted no GPU: give trials GPUs "
                "(dispatch.gpus_per_trial, or the recipe's resources.gpu_share)"
            )
        return "cpu"
    if granted:
        if not cuda:
            raise DeviceError(
                f"this trial was granted GPU {','.join(granted)} on {socket.gethostname()}, but torch "
                f"{torch.__version__} there sees no CUDA device: install a CUDA build of torch on every GPU "
                "node, or set train.device=cpu"
            )
        return f"cuda:{cuda_index(granted, os.environ.get('CUDA_VISIBLE_DEVICES') if visible is None else visible)}"
    if requested == "cuda" and not cuda:
        raise DeviceError(f"train.device=cuda: torch {torch.__version__} sees no CUDA device here")
    return "cuda:0" if cuda else "cpu"


def choose_precision(requested: str, kind: str, bf16: bool = True, tf32: bool = True) -> str:
    """fp32 | tf32 | bf16 for `requested` on a device of `kind` (cuda, cpu, meta) that has (`bf16`, `tf32`):
    auto is bf16 where the GPU computes it, TF32 where only that, fp32 elsewhere; TF32 exists on CUDA only
    (fp32 elsewhere); bf16 on a CPU runs (autocast), slowly. The dry run asks this without a GPU."""
    if requested not in PRECISIONS:
        raise UserError(f"train.precision={requested!r}: expected one of {', '.join(PRECISIONS)}")
    if kind != "cuda":
        return "bf16" if requested == "bf16" and kind == "cpu" else "fp32"
    if requested == "auto":
        return "bf16" if bf16 else "tf32" if tf32 else "fp32"
    return requested


def resolve_precision(requested: str, device: str) -> str:
    """choose_precision on `device`, asking torch what its GPU has."""
    d = torch.device(device)
    if d.type != "cuda" or requested != "auto":
        return choose_precision(requested, d.type)
    return choose_precision(
        requested,
        "cuda",
        torch.cuda.is_bf16_supported(including_emulation=False),
        torch.cuda.get_device_capability(d.index or 0)[0] >= 8,
    )


def device_name(device: str) -> str:
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.get_device_name(d.index or 0)
    if d.type == "cpu":
        return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return d.type


def place(
    requested_device: str, requested_precision: str, granted: tuple[str, ...] | None = None, share: float = 0.0
) -> Placement:
    """Where a fold of a trial with these settings trains; `granted`: the trial's GPUs from Ray (None
    outside Ray), `share`: the trial's share of a GPU."""
    device = resolve_device(requested_device, granted)
    ray_node = ""
    if granted is not None:  # in a Ray worker
        import ray  # noqa: PLC0415 - loaded already in a Ray worker; folds trained outside Ray go without it

        ray_node = ray.get_runtime_context().get_node_id()
    return Placement(
        device,
        device_name(device),
        resolve_precision(requested_precision, device),
        socket.gethostname(),
        tuple(granted or ()),
        float(share) if granted else 0.0,
        ray_node,
    )


@contextlib.contextmanager
def torch_threads(n: float):
    """Torch's intra-op threads at `n` (at least one) inside, and the caller's count again after: a trial, a
    timing or a detector sets its own count without leaving it to whatever the process runs next (the rounding
    of a sum depends on how many threads share it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def precision(p: Placement):
    """Train under `p`'s precision: autocast for bf16; on CUDA the TF32 switches (restored after), cuDNN's
    autotuner, and the trial's share of the GPU's memory. On a CPU, subnormal floats are flushed to zero
    (restored after): Adam's running averages for weights whose gradient stays zero (a unit ReLU never
    opens) decay into the subnormal range, where every operation on them is many times slower; flushed,
    Dual-Inception's later epochs train 8% faster, and nothing above 1.2e-38 changes."""
    if p.type == "cpu":
        flushed = torch.set_flush_denormal(True)  # False where the CPU cannot (then nothing changed)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=p.precision == "bf16"):
                yield
        finally:
            if flushed:
                torch.set_flush_denormal(False)
        return
    if p.type != "cuda":  # meta: shapes only, no precision to set
        yield
        return
    index = p.torch_device.index or 0
    if 0 < p.gpu_share < 1:
        torch.cuda.set_per_process_memory_fraction(p.gpu_share, index)
    saved = _tf32()
    _set_tf32(p.precision != "fp32")
    benchmark, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, True
    try:
        with torch.cuda.device(index), torch.autocast("cuda", dtype=torch.bfloat16, enabled=p.precision == "bf16"):
            yield
    finally:
        _set_tf32(*saved)
        torch.backends.cudnn.benchmark = benchmark


def _tf32():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def _set_tf32(matmul: bool, conv: bool | None = None) -> None:
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = matmul if conv is None else conv


def to_device(array, device: torch.device) -> torch.Tensor:
    """A host array on `device` without stalling the host: pinned and asynchronous on CUDA (the caching
    host allocator keeps the pinned block until the copy is done)."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t if device.type == "cpu" else t.to(device)
