"""Numbers and settings as the reports print them (tuning's report and trial lines, profiling's report): one
floor below both, so neither imports the other for a formatter."""

from __future__ import annotations


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def params_text(params: dict, sep: str = ", ") -> str:
    """train.lr=0.000125, model.drop_path=0.163: a point as the names --space takes (non-sections skipped)."""
    return sep.join(
        f"{section}.{k}={fmt(v)}"
        for section, values in params.items()
        if isinstance(values, dict)
        for k, v in values.items()
    )
