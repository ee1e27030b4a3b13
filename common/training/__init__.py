"""Fitting and judging models: the classifier zoo, walk-forward evaluation, trading metrics, the gate,
live-evidence tests, SHAP, plots, and scoring a loaded model.

Versions registered before models became portable pickled a few estimator subclasses by reference as
``common.training.<name>`` (when this package was one module). Unpickling looks the name up on this package,
so it resolves those names lazily from :mod:`common.training.legacy_estimators`: importing the package stays
free of scikit-learn, which the predictor's cold start depends on.
"""

from typing import Any

LEGACY_ESTIMATORS = frozenset(
    {
        "BalancedAdaBoostClassifier",
        "BalancedCalibratedClassifierCV",
        "BalancedMLPClassifier",
        "ReproducibleRandomForestClassifier",
        "RidgeProbabilityClassifier",
        "SingleThreadHistGradientBoostingClassifier",
    }
)


def __getattr__(name: str) -> Any:
    if name in LEGACY_ESTIMATORS:
        from common.training import legacy_estimators

        return getattr(legacy_estimators, name)
    raise AttributeError(f"module 'common.training' has no attribute {name!r}")
