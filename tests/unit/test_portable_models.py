"""Registered models are portable (issue 18): every classifier training fits is made of scikit-learn's,
LightGBM's and XGBoost's classes only, loads in a Python that cannot import this repository, and predicts
exactly what the subclasses it replaced predicted. Versions pickled with those subclasses still load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

import common.training.legacy_estimators as legacy
from common.core.settings import ALL_CLASSIFIERS
from common.data.features import FEATURE_NAMES
from common.training.evaluation import fit_classifier, make_classifier
from common.training.scorer import compile_scorer, positive_probability
from tests.conftest import PROJECT_ROOT

LEGACY_MODELS = PROJECT_ROOT / "tests" / "fixtures" / "legacy_models"
# What each subclass training used before replaced (all kept in common.training.legacy_estimators).
LEGACY_CLASS = {
    "RandomForestClassifier": legacy.ReproducibleRandomForestClassifier,
    "CalibratedClassifierCV": legacy.BalancedCalibratedClassifierCV,
    "HistGradientBoostingClassifier": legacy.SingleThreadHistGradientBoostingClassifier,
    "AdaBoostClassifier": legacy.BalancedAdaBoostClassifier,
    "RidgeClassifier": legacy.RidgeProbabilityClassifier,
    "MLPClassifier": legacy.BalancedMLPClassifier,
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Features with the scale problems of the real ones (heavy tails) and rare positives (~32 %)."""
    rng = np.random.default_rng(8)
    index = pd.date_range("2021-01-01", periods=360, freq="D", tz="UTC")
    X = pd.DataFrame(rng.standard_t(3, size=(360, len(FEATURE_NAMES))), index=index, columns=list(FEATURE_NAMES))
    y = (X["PPO"] + 0.5 * X["MACD"] + rng.normal(scale=1.0, size=360) > 1.0).astype(int).to_numpy()
    return X.iloc[:300], y[:300], X.iloc[300:]


@pytest.fixture(scope="module")
def fitted(data) -> dict[str, object]:
    X, y, _ = data
    return {name: fit_classifier(make_classifier(name, y_train=y, seed=4), X, y) for name in ALL_CLASSIFIERS}


def _legacy_estimator(estimator):
    """``estimator`` built the way make_classifier built it before: its last step as the old subclass."""
    old = clone(estimator)
    final = old[-1] if isinstance(old, Pipeline) else old
    cls = LEGACY_CLASS.get(type(final).__name__)
    if cls is None:
        return old
    replacement = cls(**final.get_params(deep=False))
    return old.set_params(**{old.steps[-1][0]: replacement}) if isinstance(old, Pipeline) else replacement


@pytest.mark.parametrize("name", ALL_CLASSIFIERS)
def test_training_fits_what_the_subclasses_fitted(name: str, data, fitted) -> None:
    """Same weights, same threads, same probability: the training decisions do not move by a bit."""
    X, y, X_test = data
    old = _legacy_estimator(make_classifier(name, y_train=y, seed=4)).fit(X, y)  # type: ignore[arg-type]
    new = fitted[name]
    assert np.array_equal(positive_probability(new, X_test), positive_probability(old, X_test))
    assert np.array_equal(new.predict(X_test), old.predict(X_test))


_LOAD_ELSEWHERE = """
import json, sys
from pathlib import Path
import cloudpickle, numpy as np, pandas as pd

root = Path(sys.argv[1]).resolve()
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != root]  # the venv's editable install
try:
    import common  # noqa: F401
    raise SystemExit("the repository is still importable: this check proves nothing")
except ModuleNotFoundError:
    pass
folder = Path(sys.argv[2])
rows = pd.read_json(folder / "rows.json", orient="split")
got = {}
for path in sorted(folder.glob("*.pkl")):
    model = cloudpickle.loads(path.read_bytes())
    got[path.stem] = model.predict_proba(rows)[:, 1].tolist()
print(json.dumps(got))
"""


def test_every_classifier_loads_without_this_repository(data, fitted, tmp_path: Path) -> None:
    """What MLflow stores (a cloudpickle of the fitted model) unpickled by a Python that cannot import
    `common`, from a folder outside the repository: a subclass of ours would raise ModuleNotFoundError."""
    rows = data[2].tail(8)
    rows.to_json(tmp_path / "rows.json", orient="split", double_precision=15)
    rows = pd.read_json(tmp_path / "rows.json", orient="split")  # what the other side reads, to the bit
    expected = {}
    for name, model in fitted.items():
        (tmp_path / f"{name}.pkl").write_bytes(cloudpickle.dumps(model))
        expected[name] = positive_probability(model, rows).tolist()
    done = subprocess.run(
        [sys.executable, "-I", "-c", _LOAD_ELSEWHERE, str(PROJECT_ROOT), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == expected


@pytest.mark.parametrize("name", ["ridge", "mlp"])
def test_a_version_pickled_with_the_old_subclasses_still_loads(name: str) -> None:
    """Saved by the training code before this change (commit 65dafdc): its pickle names
    ``common.training.RidgeProbabilityClassifier`` and friends, which must stay importable."""
    import mlflow.sklearn

    folder = LEGACY_MODELS / name
    pickled = (folder / "model.pkl").read_bytes()
    assert b"common.training" in pickled and b"common.training.evaluation" not in pickled
    model = mlflow.sklearn.load_model(str(folder))
    assert type(model[-1]).__module__ == "common.training.legacy_estimators"
    sample = json.loads((folder / "sample_predictions.json").read_text())
    rows = pd.DataFrame(sample["rows"], columns=sample["columns"])
    expected = np.asarray(sample["proba"])
    np.testing.assert_allclose(positive_probability(model, rows), expected, rtol=0, atol=1e-12)
    score = compile_scorer(model, FEATURE_NAMES)
    np.testing.assert_allclose(score(rows.to_numpy()), expected, rtol=0, atol=1e-12)


def test_the_training_package_resolves_every_legacy_class_without_importing_scikit_learn() -> None:
    """Unpickling an old version looks its class up on ``common.training``: every class the old module held
    must resolve there, and importing the package alone must not pull in scikit-learn (the predictor's cold
    start). A fresh interpreter, so this test's own imports do not count."""
    import inspect

    import common.training

    classes = {
        name for name, value in inspect.getmembers(legacy, inspect.isclass) if value.__module__ == legacy.__name__
    }
    public = {name for name in classes if not name.startswith("_")}
    assert public == common.training.LEGACY_ESTIMATORS
    assert all(getattr(common.training, name) is getattr(legacy, name) for name in public)
    probe = "import sys, common.training, common.training.native_models, common.training.scorer; print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert done.stdout.strip() == "False"
