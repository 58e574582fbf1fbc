"""The data layer: every benchmark, read as distributed, becomes one manifest schema.

    sources/<name>.py   one adapter per dataset (registered in registry.py)
    load.py             `load_manifest`: an adapter on its data root, or on its synthetic stand-in
    manifest.py         the manifest schema, problems and repairs every adapter reports
    protocols.py        label protocols (configs/protocols.yaml) applied to a manifest
    sheets.py, frames.py   reading annotation sheets and frame folders the way the datasets ship them
    synth/              deterministic synthetic stand-ins written in the official layouts
    check.py            the summary behind `hsta-bench datasets check`

`load_manifest(name, config)` is the entry point the rest of the suite uses.
"""

__all__ = ["get_source", "list_sources", "load_manifest"]


def __getattr__(name: str):
    # lazy, so that light modules of the package (flowimage, frames) import without polars
    if name == "load_manifest":
        from hsta_bench.data import load  # noqa: PLC0415 - see above

        return load.load_manifest
    if name in __all__:
        from hsta_bench.data import registry  # noqa: PLC0415 - see above

        return getattr(registry, name)
    raise AttributeError(name)
