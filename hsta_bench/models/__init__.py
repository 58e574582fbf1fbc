"""Models: one registry (registry.py) for HSTA (hsta.py), the baselines (top-level baselines/) and models
from outside the repository (plugins.py); one attention module with switchable kernels (attention.py); the
cache->tensor conversion (inputs.py).

    from hsta_bench.models import create_model, list_models
    model = create_model("hsta_tiny", num_classes=3, attention="sdpa")
    logits = model(model.example_input(batch_size=2))
"""

from hsta_bench.models.registry import (
    MERModel,
    count_parameters,
    create_model,
    list_models,
    meta_model,
    model_class,
    model_inputs,
    register_model,
    small_overrides,
)

__all__ = [
    "MERModel",
    "count_parameters",
    "create_model",
    "list_models",
    "model_class",
    "model_inputs",
    "meta_model",
    "register_model",
    "small_overrides",
]
