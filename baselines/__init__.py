"""Baseline models, one module each, registered in hsta-bench's model registry on import."""

from baselines import (  # noqa: F401
    c3d,
    causalnet,
    dual_inception,
    htnet,
    htnet_small,
    off_apexnet,
    rcn,
    ststnet,
    timesformer,
)
