"""Finite numbers for what leaves the process: JSON has no NaN or infinity, MLflow refuses them as metrics, and
a plot axis cannot be scaled to them. One definition of "a real, finite number" for every such boundary."""

from __future__ import annotations

import math
import numbers
from typing import Any


def is_finite(value: Any) -> bool:
    """A real number (Python or NumPy, bools included) that is neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and math.isfinite(value)


def finite_or_none(value: Any, digits: int | None = None) -> float | None:
    """``value`` as a float (rounded to ``digits`` if given), or None when it is missing, not a number,
    NaN or infinite: the JSON-safe form of an optional measurement."""
    if not is_finite(value):
        return None
    number = float(value)
    return round(number, digits) if digits is not None else number


def finite_or(value: Any, default: float) -> float:
    """``value`` as a float when finite, else ``default``."""
    return float(value) if is_finite(value) else default


def finite_metrics(metrics: dict[str, Any], digits: int = 6) -> dict[str, float]:
    """The finite entries of a metrics dict, rounded: what a JSON record or an MLflow run can hold."""
    return {name: round(float(value), digits) for name, value in metrics.items() if is_finite(value)}
