"""Profiling the models' attention and the models themselves (`hsta-bench profile`):

cases.py    the attention calls a model really makes (kinds, token shapes, masks) and their FLOPs
kernels.py  the kernels compared: naive, sdpa, flex, and sdpa pinned to one implementation
measure.py  one case with one kernel: checked against the written-out attention, then timed (median), as
            GFLOP/s and a fraction of the ceiling; "unsupported" where a kernel cannot run it
steps.py    a whole model: inference and a training step with each kernel
memory.py   peak memory of one call (CUDA allocator, or torch's profiler on a CPU)
ceiling.py  the matrix-product ceiling and the memory bandwidth of this hardware, measured in the same run
session.py  a profile: settings (configs/profile.yaml + preset + options), environment, every measurement
report.py   tables, findings (what bounds each case, whether the goal is met), CSV, JSON, markdown, plot
"""
