"""The original service's response shapes (SPEC.md, "The original API"), declared here on their own, never
imported from the app: what an old client validates. Extra fields are allowed (an old client ignores them);
a changed type is not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError


class _Original(BaseModel):
    model_config = ConfigDict(extra="allow")


class OriginalPrediction(_Original):
    """``GET /prediction``: its documented answer is ``{"prediction_probabilities": 0.4, "symbol": "SOL",
    "trend_type": "uptrend"}``; the number is P(trend), the original's ``predict_proba(x)[0][1]``."""

    prediction_probabilities: StrictFloat = Field(ge=0.0, le=1.0)
    symbol: StrictStr
    trend_type: Literal["uptrend", "downtrend"]


class OriginalPerformanceMetrics(_Original):
    positive_accuracy: StrictFloat
    negative_accuracy: StrictFloat
    overall_score: StrictFloat
    accuracy: StrictFloat
    precision: StrictFloat


class OriginalModel(_Original):
    """One entry of ``GET /models``."""

    symbol: StrictStr
    trend_type: Literal["uptrend", "downtrend"]
    feature_importance: dict[str, StrictFloat]
    performance_metrics: OriginalPerformanceMetrics
    target_pct: StrictFloat
    prediction_window_days: StrictInt


def is_original_prediction(body: Any) -> bool:
    """What an old client does with an answer: validate the schema, then ``float(body[...])``."""
    try:
        OriginalPrediction.model_validate(body)
        float(body["prediction_probabilities"])
    except (ValidationError, TypeError, KeyError):
        return False
    return True
