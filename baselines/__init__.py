"""Baseline models, one module each, registered in hsta-bench's model registry on import."""

from baselines import ststnet  # noqa: F401
