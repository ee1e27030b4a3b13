"""Booster fits the scorer tests share."""

from __future__ import annotations

from typing import Any

import pandas as pd


def early_stopped_lightgbm(X: pd.DataFrame, y: pd.Series) -> Any:
    """LightGBM fitted on the first 200 rows, stopped early on the next 50: predict_proba then uses the best
    iteration, not all 200, and every fast path must too. The caller asserts that it did stop early."""
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=200, learning_rate=0.3, verbose=-1, n_jobs=1).fit(
        X.iloc[:200],
        y.iloc[:200],
        eval_set=[(X.iloc[200:250], y.iloc[200:250])],
        callbacks=[lightgbm.early_stopping(5, verbose=False)],
    )
