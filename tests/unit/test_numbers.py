"""The one definition of a finite number for what leaves the process (JSON, MLflow metrics, plot axes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.core.numbers import finite_metrics, finite_or, finite_or_none, is_finite


@pytest.mark.parametrize("value", [0, 1.5, -2, np.float32(0.25), np.float64(3.0), np.int64(7), True])
def test_real_finite_numbers_pass_as_floats(value: object) -> None:
    assert is_finite(value)
    assert finite_or_none(value) == float(value)  # type: ignore[arg-type]
    assert isinstance(finite_or_none(value), float)


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, np.nan, np.float32("inf"), "1.0", [1.0]])
def test_missing_non_numbers_and_non_finite_values_become_none(value: object) -> None:
    assert not is_finite(value)
    assert finite_or_none(value) is None
    assert finite_or(value, -1.0) == -1.0


def test_rounding_is_optional_and_metrics_keep_only_finite_entries() -> None:
    assert finite_or_none(1 / 3, 3) == 0.333
    assert finite_or_none(1 / 3) == 1 / 3
    assert finite_metrics({"a": 1 / 3, "b": math.nan, "c": np.float64(2.0), "d": "x", "e": math.inf}) == {
        "a": 0.333333,
        "c": 2.0,
    }
