"""Profiling the attention of the models (being built, for `hsta-bench profile`):

    cases.py    the attention calls a model really makes (kinds, token shapes, masks), their FLOPs, and each
                backend's agreement with the written-out attention
    ceiling.py  the matrix-product ceiling of this hardware, measured in the same run
    measure.py  one case with one backend: checked against the written-out attention, then timed (median),
                as GFLOP/s and a fraction of the ceiling; "unsupported" where a backend cannot run it
"""
