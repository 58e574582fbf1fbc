"""One attention implementation for every model, with switchable kernels.

Backends (all compute softmax(q k^T / sqrt(d) + mask) v and agree to float tolerance, tested):
- `naive`: written out with matmul and softmax: the reference for checking, any dtype, any device;
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention`, the fused kernels (flash / memory-efficient
  on CUDA, a fused CPU kernel), the default;
- `flex`: FlexAttention (compiled) with a mask *function*, worth it where the mask has structure, e.g.
  divided space-time attention over a joint sequence (`divided_masks`: TimeSformer's two attentions).

The backend is chosen at build time (`create_model(..., attention="naive")`) and can be changed at
run time for a whole model (`set_backend(model, "sdpa")`) or a block of code (`with backend("naive"):`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable

import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

BACKENDS = ("naive", "sdpa", "flex")
DEFAULT_BACKEND = "sdpa"  # what a model built without `attention=` uses
# the kernel `backend(name)` forces inside its block (None: each module's own); a context variable, so a
# block in one thread does not change another thread's attention
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("hsta_bench_forced_attention", default=None)
_recorders: list[Callable] = []  # see recording()


@contextlib.contextmanager
def backend(name: str):
    """Every attention inside the block uses `name`, whatever its module says."""
    _check(name)
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def set_backend(model: nn.Module, name: str) -> nn.Module:
    _check(name)
    for module in model.modules():
        if isinstance(module, AttentionBase):
            module.backend = name
    return model


@contextlib.contextmanager
def recording(callback: Callable):
    """Inside the block, every attention call first calls `callback(q, k, v, mask_mod)` (profiling reads the
    token shapes a model really attends over this way)."""
    _recorders.append(callback)
    try:
        yield
    finally:
        _recorders.remove(callback)


def _check(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"attention backend '{name}' is not one of {', '.join(BACKENDS)}")


@functools.cache
def _compiled_flex():
    return torch.compile(flex_attention, dynamic=False)


def reset_flex() -> None:
    """Forget flex's compiled kernels and block masks. Needed after a call fails inside the compiler (e.g. a
    backward pass on a CPU): torch then runs that function unfused, silently, for the rest of the process."""
    _compiled_flex.cache_clear()
    _block_mask.cache_clear()
    torch._dynamo.reset()


@functools.lru_cache(maxsize=32)
def _block_mask(mask_mod: Callable, q_len: int, kv_len: int, device: str):
    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=q_len, KV_LEN=kv_len, device=device)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend_name: str, mask_mod: Callable | None = None
) -> torch.Tensor:
    """Attention of (B, H, Nq, D) queries over (B, H, Nk, D) keys/values.

    `mask_mod(b, h, q_idx, kv_idx) -> bool` (FlexAttention's convention) says which pairs may attend;
    the naive and sdpa backends evaluate it into a boolean mask, flex uses it block-sparsely.
    """
    for callback in _recorders:
        callback(q, k, v, mask_mod)
    name = _forced.get() or backend_name
    if name == "flex":
        block_mask = _block_mask(mask_mod, q.shape[-2], k.shape[-2], q.device.type) if mask_mod else None
        return _compiled_flex()(q, k, v, block_mask=block_mask)
    bool_mask = None
    if mask_mod is not None:
        qi = torch.arange(q.shape[-2], device=q.device)[:, None]
        ki = torch.arange(k.shape[-2], device=q.device)[None, :]
        bool_mask = mask_mod(0, 0, qi, ki)
    if name == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if bool_mask is not None:
        scores = scores.masked_fill(~bool_mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


@functools.cache
def divided_masks(frames: int, patches: int):
    """(temporal, spatial) mask_mods over [CLS, frame 0 patches, frame 1 patches, ...]; cached so that
    each size has one pair of functions (the flex backend caches block masks by function)."""

    def temporal(b, h, q_idx, kv_idx):
        both_patches = (q_idx > 0) & (kv_idx > 0)
        same_place = ((q_idx - 1) % patches) == ((kv_idx - 1) % patches)
        return (both_patches & same_place) | ((q_idx == 0) & (kv_idx == 0))

    def spatial(b, h, q_idx, kv_idx):
        same_frame = ((q_idx - 1) // patches) == ((kv_idx - 1) // patches)
        return (q_idx == 0) | (kv_idx == 0) | ((q_idx > 0) & (kv_idx > 0) & same_frame)

    temporal.__name__ = f"temporal_{frames}x{patches}"
    spatial.__name__ = f"spatial_{frames}x{patches}"
    return temporal, spatial


class AttentionBase(nn.Module):
    def __init__(self, dim: int, heads: int, backend_name: str | None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.backend = backend_name or DEFAULT_BACKEND
        _check(self.backend)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    @staticmethod
    def merge(x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(AttentionBase):
    """Multi-head self-attention: one qkv projection, an output projection.

    `qkv_bias`: True (a bias on q, k and v), False (none), or "qv" (q and v only, the key bias fixed at
    zero: BEiT/VideoMAE style, as in HSTA's release; a key bias cannot change attention anyway).
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool | str = True, backend_name: str | None = None):
        super().__init__(dim, heads, backend_name)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias is True)
        self.q_bias = self.v_bias = None
        if qkv_bias == "qv":
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask_mod: Callable | None = None) -> torch.Tensor:
        b, n, c = x.shape
        if self.q_bias is not None:
            assert self.v_bias is not None  # __init__ sets q_bias and v_bias together
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
            qkv = F.linear(x, self.qkv.weight, bias)
        else:
            qkv = self.qkv(x)
        q, k, v = qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(self.merge(attend(q, k, v, self.backend, mask_mod)))


class CrossAttention(AttentionBase):
    """The first token of `x` as the single query over all tokens of `x` (CrossViT's CLS fusion)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, backend_name: str | None = None):
        super().__init__(dim, heads, backend_name)
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.split(self.wq(x[:, :1]))
        out = attend(q, self.split(self.wk(x)), self.split(self.wv(x)), self.backend)
        return self.proj(self.merge(out))
