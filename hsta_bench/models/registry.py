"""The model registry (one, as in timm): builders registered by name, `create_model` builds any of them.

A builder is a function `name(num_classes, **overrides) -> MERModel` decorated with `@register_model`;
HSTA's live in hsta_bench/models/hsta.py, the baselines' in the top-level `baselines/` package.
"""

from __future__ import annotations

import fnmatch
from typing import Callable

import torch
from torch import nn

from hsta_bench.errors import UserError

_BUILDERS: dict[str, Callable[..., "MERModel"]] = {}
_SMALL: dict[str, dict] = {}


class MERModel(nn.Module):
    """What every model offers: its declared inputs, an example batch, and logits from a batch dict.

    `inputs` maps an input kind (hsta_bench/preprocess/kinds.py) to the per-sample tensor shape the
    model takes: frames/special (3, T, S, S), flow/apex (3, S, S). `forward(batch)` takes a dict of
    those (float, batch first) and returns (B, num_classes) logits.
    """

    inputs: dict[str, tuple[int, ...]]
    num_classes: int
    fold_batchable = False  # small enough, and free of data-dependent code, to train many folds at once

    def example_input(self, batch_size: int = 2, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {kind: torch.randn(batch_size, *shape, generator=generator).to(device or "cpu")
                for kind, shape in self.inputs.items()}


def register_model(builder: Callable[..., MERModel] | None = None, *, small: dict | None = None):
    """Register a builder under its function name: `@register_model` or `@register_model(small={...})`,
    where `small` are overrides that shrink the inputs (not the parameters) for quick tests."""

    def add(fn: Callable[..., MERModel]) -> Callable[..., MERModel]:
        if fn.__name__ in _BUILDERS:
            raise ValueError(f"model '{fn.__name__}' registered twice")
        _BUILDERS[fn.__name__] = fn
        _SMALL[fn.__name__] = dict(small or {})
        return fn

    return add(builder) if builder is not None else add


def small_overrides(name: str) -> dict:
    """Overrides that make `name` take small inputs with the same parameters (for tests and smoke runs)."""
    _builders()
    return dict(_SMALL[name])


def _builders() -> dict[str, Callable[..., MERModel]]:
    import baselines  # noqa: F401  (registers the baselines)
    import hsta_bench.models.hsta  # noqa: F401

    return _BUILDERS


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _builders() if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int, attention: str | None = None, **overrides) -> MERModel:
    """Build model `name` for `num_classes` classes; `attention` picks the attention backend."""
    builders = _builders()
    if name not in builders:
        raise UserError(f"unknown model '{name}' (known: {', '.join(sorted(builders))})")
    model = builders[name](num_classes=num_classes, **overrides)
    if attention is not None:
        from hsta_bench.models.attention import set_backend

        set_backend(model, attention)
    return model


def model_class(name: str) -> type[MERModel]:
    """The class `name` builds, from its builder's return annotation (no model is built)."""
    import typing

    builders = _builders()
    if name not in builders:
        raise UserError(f"unknown model '{name}' (known: {', '.join(sorted(builders))})")
    return typing.get_type_hints(builders[name])["return"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
