#!/usr/bin/env bash
# The CUDA checks of `hsta-bench profile` in one short run, for a machine with a GPU and a CUDA build of torch
# (e.g. a lent device machine, whose python3 has one). The package runs from this checkout; the profile needs
# only torch, typer, rich, pyyaml and matplotlib (pytest and pytest-benchmark for the benchmark).
#
#   bash scripts/gpu_check.sh [OUTPUT_DIR]      # a few minutes expected; not yet run on a GPU (none was lent)
#
# 1. the attention benchmark on CUDA: every kernel (flash, memory-efficient, cuDNN, flex, ...) checked against
#    the written-out attention, then timed against it with CUDA synchronisation;
# 2. `hsta-bench profile --device cuda` on the paper-size HSTA and the TimeSformer in fp32 and bf16: CUDA
#    events, the pinned sdpa kernels, peak memory from the allocator, the report and its plot in OUTPUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-results}}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider --benchmark-enable tests/benchmarks/test_attention_bench.py 2>&1 | tail -40
python3 -m hsta_bench profile --device cuda --model hsta_base_224 --model timesformer --dtype fp32 --dtype bf16 \
    --output "$out" 2>&1 | tail -60
