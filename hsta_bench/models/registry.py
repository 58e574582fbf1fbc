"""The model registry (one, as in timm): builders registered by name, `create_model` builds any of them.

A builder is a function `name(num_classes, **overrides) -> MERModel` decorated with `@register_model`;
HSTA's live in hsta_bench/models/hsta.py, the baselines' in the top-level `baselines/` package, and your
own in your package or module (models/plugins.py: an entry point or --import; README, "Your own model").
"""

from __future__ import annotations

import fnmatch
import typing
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hsta_bench.errors import UserError
from hsta_bench.models.attention import set_backend
from hsta_bench.models.inputs import KINDS, RANKS

_BUILDERS: dict[str, Callable[..., MERModel]] = {}
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

    def example_input(
        self, batch_size: int = 2, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        return {
            kind: torch.randn(batch_size, *shape, generator=generator).to(device or "cpu")
            for kind, shape in self.inputs.items()
        }


def register_model(builder: Callable[..., MERModel] | None = None, *, small: dict | None = None):
    """Register a builder under its function name: `@register_model` or `@register_model(small={...})`,
    where `small` are overrides that shrink the inputs (not the parameters) for quick tests."""

    def add(fn: Callable[..., MERModel]) -> Callable[..., MERModel]:
        taken = _BUILDERS.get(fn.__name__)
        if taken is not None:
            raise UserError(
                f"model '{fn.__name__}' registered twice (by {taken.__module__} and {fn.__module__}); "
                "rename one of the builders"
            )
        _BUILDERS[fn.__name__] = fn
        _SMALL[fn.__name__] = dict(small or {})
        return fn

    return add(builder) if builder is not None else add


def small_overrides(name: str) -> dict:
    """Overrides that make `name` take small inputs with the same parameters (for tests and smoke runs)."""
    _builders()
    return dict(_SMALL[name])


def _builders() -> dict[str, Callable[..., MERModel]]:
    # register on import: the models import this module for `register_model`, so they load when first asked
    # for (and plugins, which reads the registry, loads the models from outside the package after them)
    import baselines  # noqa: F401, PLC0415
    import hsta_bench.models.hsta  # noqa: F401, PLC0415
    from hsta_bench.models import plugins  # noqa: PLC0415

    plugins.load()  # models from outside: installed entry points, --import modules
    return _BUILDERS


def _builder(name: str) -> Callable[..., MERModel]:
    builders = _builders()
    if name not in builders:
        raise UserError(f"unknown model '{name}' (known: {', '.join(sorted(builders))})")
    return builders[name]


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _builders() if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int, attention: str | None = None, **overrides) -> MERModel:
    """Build model `name` for `num_classes` classes; `attention` picks the attention backend."""
    model = _builder(name)(num_classes=num_classes, **overrides)
    if attention is not None:
        set_backend(model, attention)
    return model


def model_class(name: str) -> type[MERModel]:
    """The class `name` builds, from its builder's return annotation; built on the meta device (shapes, no
    data) where the builder has none."""
    builder = _builder(name)
    try:
        annotated = typing.get_type_hints(builder).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: read the built model instead
        annotated = None
    if isinstance(annotated, type) and issubclass(annotated, MERModel):
        return annotated
    return type(meta_model(name, 3, {}))


def model_inputs(name: str, num_classes: int, **overrides) -> dict[str, tuple[int, ...]]:
    """The inputs `name` takes with `overrides`, read from a model built on the meta device: no memory, no
    initialisation (hsta_base_224's 82 M parameters), and checked (one line naming the model when wrong)."""
    return meta_model(name, num_classes, overrides).inputs


def meta_model(name: str, num_classes: int, overrides: dict) -> MERModel:
    """Model `name` built on the meta device (its shapes and declarations, no data): checked as `check_declared`."""
    builder = _builder(name)
    try:
        with torch.device("meta"):
            model = builder(num_classes=num_classes, **overrides)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a builder that fails on meta fails the same on a device
        raise UserError(
            f"model {name}: cannot be built with {overrides or 'its defaults'} ({type(exc).__name__}: {exc})"
        ) from None
    check_declared(name, model, num_classes)
    return model


def check_declared(name: str, model, num_classes: int) -> None:
    """What a builder returns is a MERModel whose declared inputs preprocessing can make."""
    if not isinstance(model, MERModel):
        raise UserError(f"model {name}: its builder returned {type(model).__name__}, not a hsta_bench.models.MERModel")
    inputs = getattr(model, "inputs", None)
    if not isinstance(inputs, dict) or not inputs:
        raise UserError(f"model {name}: `inputs` must map input kinds ({', '.join(KINDS)}) to per-sample shapes")
    for kind, shape in inputs.items():
        if kind not in KINDS:
            raise UserError(f"model {name}: unknown input kind '{kind}' (known: {', '.join(KINDS)})")
        if (
            not isinstance(shape, tuple)
            or len(shape) != RANKS[kind]
            or shape[0] != 3
            or not all(isinstance(d, int) and d > 0 for d in shape)
        ):
            want = "(3, T, S, S)" if RANKS[kind] == 4 else "(3, S, S)"
            raise UserError(
                f"model {name}: input '{kind}' has shape {shape}; it must be a tuple {want} of positive ints"
            )
    if getattr(model, "num_classes", num_classes) != num_classes:
        raise UserError(f"model {name}: built for {num_classes} classes, it says num_classes={model.num_classes}")


def check_forward(name: str, num_classes: int, overrides: dict) -> None:
    """One forward and loss on a random batch of two, on the CPU: the logits' shape and a finite loss, before
    any fold trains. Run for models from outside the repository (the built-in ones are tested by the suite)."""
    model = create_model(name, num_classes, **overrides)
    check_declared(name, model, num_classes)
    model.train()
    generator = torch.Generator().manual_seed(0)
    try:
        logits = model(model.example_input(2, generator=generator))
    except Exception as exc:  # noqa: BLE001 - the user's forward, in one line
        raise UserError(
            f"model {name}: forward fails on a batch of its declared inputs ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, num_classes):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(
            f"model {name}: forward returned {got} for a batch of 2; it must return logits of "
            f"shape (batch, {num_classes})"
        )
    loss = F.cross_entropy(logits.float(), torch.tensor([0, num_classes - 1]))
    if not torch.isfinite(loss):
        raise UserError(f"model {name}: the loss of a random batch is {loss.item()} (not finite) before training")


def is_builtin(name: str) -> bool:
    from hsta_bench.models import plugins  # noqa: PLC0415 - plugins reads this registry (see _builders)

    return _builder(name).__module__.split(".")[0] in plugins.BUILT_IN


def origin(name: str) -> str:
    """Where model `name` comes from (run records): built-in, an entry point's package, or --import."""
    from hsta_bench.models import plugins  # noqa: PLC0415 - plugins reads this registry (see _builders)

    return plugins.origin(_builder(name).__module__)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
