"""hsta-bench: leakage-free benchmarking of micro-expression recognition (HSTA and baselines).

Start at the README; the data layer is in `hsta_bench.data`, the command line in `hsta_bench.cli`.
"""

__version__ = "0.1.0"
