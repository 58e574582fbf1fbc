"""The kernels profiling compares: the attention backends models use (attention.py: naive, sdpa, flex), and
sdpa pinned to one of torch's implementations (sdpa-flash, sdpa-efficient, sdpa-cudnn, sdpa-math), since
plain sdpa picks one itself and the table should say which one is fast. A pinned implementation that cannot
run a case (e.g. memory-efficient or cuDNN attention on a CPU) raises, and the case is reported unsupported.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import flex_attention

PINNED = {
    "sdpa-flash": "FLASH_ATTENTION",
    "sdpa-efficient": "EFFICIENT_ATTENTION",
    "sdpa-cudnn": "CUDNN_ATTENTION",
    "sdpa-math": "MATH",
}
KERNELS = ("naive", "sdpa", "flex", *PINNED)


def check(name: str) -> None:
    if name not in KERNELS:
        raise ValueError(f"'{name}' is not one of {', '.join(KERNELS)}")


def backend_of(name: str) -> str:
    """The attention backend a kernel runs through (the pinned ones are sdpa)."""
    check(name)
    return "sdpa" if name in PINNED else name


def pinned(name: str):
    """A context in which sdpa uses only this kernel's implementation (nothing for the others)."""
    check(name)
    if name not in PINNED:
        return contextlib.nullcontext()

    return sdpa_kernel(getattr(SDPBackend, PINNED[name]))


def limit(name: str, backward: bool, device: str, dtype=None) -> str | None:
    """What `name` declares it cannot do, as documented by torch (2.13), or None: FlexAttention has no backward
    pass on a CPU; memory-efficient and cuDNN attention are CUDA kernels; flash and cuDNN attention on CUDA take
    fp16 and bf16 only. A benchmark skips these cases and nothing else: a kernel that raises anywhere else is a
    regression, not a limitation."""
    check(name)
    dtype = dtype or torch.float32
    on_cuda = torch.device(device).type == "cuda"
    if name == "flex" and backward and not on_cuda:
        return "FlexAttention has no backward pass on a CPU"
    if name in ("sdpa-efficient", "sdpa-cudnn") and not on_cuda:
        return f"{PINNED[name].lower().replace('_', ' ')} is a CUDA kernel"
    if name in ("sdpa-flash", "sdpa-cudnn") and on_cuda and dtype not in (torch.float16, torch.bfloat16):
        return f"{PINNED[name].lower().replace('_', ' ')} on CUDA takes fp16 and bf16 only"
    return None


def preflight(name: str, backward: bool, device: str, dtype=None) -> None:
    """Raise what torch raises where `name` cannot run this pass here, asked of the uncompiled kernel on a tiny
    input. For flex this must come first: a call that fails inside torch.compile leaves the compiled function
    running unfused, silently, for the rest of the process (seen: flex's backward on a CPU, after which
    every flex forward ran at the written-out attention's speed and memory)."""
    if name != "flex" or not backward:
        return

    q, k, v = (
        torch.randn(1, 1, 16, 16, device=device, dtype=dtype or torch.float32, requires_grad=True) for _ in range(3)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "called without torch.compile()": this is the point here
        flex_attention(q, k, v).sum().backward()
