"""Baseline models, one module each, registered in hsta-bench's model registry on import."""

from baselines import c3d, htnet, htnet_small, off_apexnet, rcn, ststnet, timesformer  # noqa: F401
