"""Dataset adapters; importing this package registers every one of them (in the order listed here).

To add a dataset: write `sources/<name>.py` with a `DatasetSource` subclass decorated with `@register`
(reading the official layout, and writing a synthetic stand-in in it), add `configs/datasets/<name>.yaml`,
and import the module here. The tests pick it up from the registry.
"""

# isort: off
from hsta_bench.data.sources import casme2, samm, smic, casme3, megc2019, causalnet  # noqa: F401
