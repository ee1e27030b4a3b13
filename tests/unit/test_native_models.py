"""common.training.native_models: a LightGBM classifier's native model text, loaded through LightGBM's C library
without the lightgbm package, scores exactly what ``predict_proba`` scores (one row and many, with early
stopping's best iteration, on the zoo's LightGBM as training fits it), and imports none of lightgbm, sklearn
or SciPy. XGBoost's JSON model likewise. Only binary LightGBM and XGBoost classifiers on labels 0/1 get one."""

from __future__ import annotations

import json
import subprocess
import sys

import lightgbm
import numpy as np
import pandas as pd
import pytest

from common.data.features import FEATURE_NAMES
from common.training.evaluation import fit_classifier, make_classifier
from common.training.native_models import (
    LIGHTGBM_ARTIFACT,
    NATIVE_MODEL_TAG,
    XGBOOST_ARTIFACT,
    LightGBMModel,
    XGBoostModel,
    load_native,
    native_artifact,
    native_reference,
)
from common.training.scorer import compile_scorer, positive_probability
from tests.boosters import early_stopped_lightgbm
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(11)
    index = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    X = pd.DataFrame(rng.standard_t(3, size=(300, len(FEATURE_NAMES))), index=index, columns=list(FEATURE_NAMES))
    X.iloc[::17, 3] = np.nan  # missing values take the trees' default directions
    y = pd.Series((X["PPO"] + 0.5 * X["MACD"] + rng.normal(scale=0.8, size=300) > 0).astype(int), index=index)
    return X, y


def _native(model) -> LightGBMModel:
    found = native_artifact(model)
    assert found is not None
    reference, payload = found
    assert reference == {"format": "lightgbm", "path": LIGHTGBM_ARTIFACT}
    assert native_reference({NATIVE_MODEL_TAG: json.dumps(reference)}) == reference
    return load_native(reference, payload)


def test_the_zoo_lightgbm_scores_exactly_as_predict_proba_through_its_native_text(data) -> None:
    X, y = data
    model = fit_classifier(make_classifier("lightgbm", y_train=y, seed=2), X.iloc[:250], y.iloc[:250])
    native = _native(model)
    rows = X.iloc[250:]
    expected = positive_probability(model, rows)
    score = compile_scorer(native, FEATURE_NAMES)
    np.testing.assert_array_equal(score(rows.to_numpy()), expected)  # the same C library, the same trees
    singles = [score(rows.iloc[[i]].to_numpy())[0] for i in range(len(rows))]
    np.testing.assert_array_equal(singles, expected)
    assert list(native.feature_names_in_) == list(FEATURE_NAMES)
    with pytest.raises(ValueError, match="19 features"):
        score(rows.to_numpy()[:, :5])


def test_early_stopping_best_iteration_is_what_the_native_text_holds(data) -> None:
    X, y = data
    model = early_stopped_lightgbm(X, y)
    assert 0 < model.best_iteration_ < 200
    native = _native(model)
    expected = model.predict_proba(X.iloc[250:])[:, 1]
    np.testing.assert_array_equal(native.probabilities(X.iloc[250:].to_numpy()), expected)
    np.testing.assert_array_equal(native.probabilities(X.iloc[[260]].to_numpy()), expected[10:11])


def test_only_binary_booster_classifiers_on_0_1_get_a_native_file(data) -> None:
    import xgboost

    X, y = data
    multiclass = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, pd.cut(X["PPO"], 3, labels=False))
    other_labels = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y + 5)
    ridge = fit_classifier(make_classifier("ridge", y_train=y, seed=2), X.fillna(0.0), y)
    assert native_artifact(multiclass) is None
    assert native_artifact(other_labels) is None
    assert native_artifact(ridge) is None
    raw = xgboost.XGBClassifier(n_estimators=3, objective="binary:logitraw", n_jobs=1).fit(X, y)
    assert native_artifact(raw) is None
    assert native_reference({}) is None  # a run logged before: its pickle serves


def test_a_native_text_that_is_not_a_binary_model_is_refused(data) -> None:
    X, _ = data
    multiclass = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, pd.cut(X["PPO"], 3, labels=False))
    with pytest.raises(ValueError, match="binary"):
        load_native({"format": "lightgbm"}, multiclass.booster_.model_to_string().encode())
    with pytest.raises(ValueError, match="binary"):
        load_native({"format": "lightgbm"}, b"not a model")
    with pytest.raises(ValueError, match="format"):
        load_native({"format": "onnx"}, b"")


def test_scoring_a_native_model_imports_neither_lightgbm_sklearn_nor_scipy(data, tmp_path) -> None:
    """The point of the native file: the predictor's cold path without the sklearn wrapper's imports."""
    X, y = data
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y)
    found = native_artifact(model)
    assert found is not None
    probabilities, modules = _score_in_a_fresh_process({"format": "lightgbm"}, found[1], X.tail(3), tmp_path)
    assert not {"lightgbm", "sklearn", "scipy"} & modules
    np.testing.assert_array_equal(probabilities, model.predict_proba(X.tail(3))[:, 1])


def test_the_zoo_xgboost_scores_exactly_as_predict_proba_through_its_native_json(data) -> None:
    X, y = data
    model = fit_classifier(make_classifier("xgboost", y_train=y, seed=2), X.iloc[:250], y.iloc[:250])
    found = native_artifact(model)
    assert found is not None
    reference, payload = found
    assert reference == {"format": "xgboost", "path": XGBOOST_ARTIFACT, "iteration_range": [0, 0], "missing": None}
    native = load_native(native_reference({NATIVE_MODEL_TAG: json.dumps(reference)}), payload)
    assert isinstance(native, XGBoostModel)
    rows = X.iloc[250:]
    expected = positive_probability(model, rows)
    score = compile_scorer(native, FEATURE_NAMES)
    np.testing.assert_array_equal(score(rows.to_numpy()), expected)
    np.testing.assert_array_equal([score(rows.iloc[[i]].to_numpy())[0] for i in range(5)], expected[:5])
    with pytest.raises(ValueError, match="19 features"):
        score(rows.to_numpy()[:, :5])


def test_xgboost_early_stopping_and_a_missing_value_travel_with_the_native_json(data) -> None:
    import xgboost

    X, y = data
    zeros = X.fillna(0.0)
    model = xgboost.XGBClassifier(n_estimators=200, learning_rate=0.3, early_stopping_rounds=5, missing=0.0, n_jobs=1)
    model.fit(zeros.iloc[:200], y.iloc[:200], eval_set=[(zeros.iloc[200:250], y.iloc[200:250])], verbose=False)
    assert 0 < model.best_iteration < 199
    found = native_artifact(model)
    assert found is not None
    assert found[0]["iteration_range"] == [0, model.best_iteration + 1] and found[0]["missing"] == 0.0
    native = load_native(json.loads(json.dumps(found[0])), found[1])
    np.testing.assert_array_equal(
        native.probabilities(zeros.iloc[250:].to_numpy()), model.predict_proba(zeros.iloc[250:])[:, 1]
    )


def test_scoring_a_native_xgboost_model_imports_neither_xgboost_sklearn_nor_scipy(data, tmp_path) -> None:
    X, y = data
    model = fit_classifier(make_classifier("xgboost", y_train=y, seed=2), X, y)
    found = native_artifact(model)
    assert found is not None
    probabilities, modules = _score_in_a_fresh_process(found[0], found[1], X.tail(3), tmp_path)
    assert not {"xgboost", "sklearn", "scipy"} & modules
    np.testing.assert_array_equal(probabilities, positive_probability(model, X.tail(3)))


def _score_in_a_fresh_process(
    reference: dict, payload: bytes, rows: pd.DataFrame, folder
) -> tuple[list[float], set[str]]:
    """A new interpreter loads the native file and scores ``rows`` through the predictor's scorer, as the
    predictor's cold path does: the probabilities, and every top-level package it imported meanwhile."""
    (folder / "model").write_bytes(payload)
    np.save(folder / "rows.npy", rows.to_numpy())
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from common.training.native_models import load_native\n"
        "from common.training.scorer import compile_scorer\n"
        f"native = load_native({reference!r}, open({str(folder / 'model')!r}, 'rb').read())\n"
        f"p = compile_scorer(native, [])(np.load({str(folder / 'rows.npy')!r}))\n"
        "print(json.dumps({'p': p.tolist(), 'modules': sorted({m.split('.')[0] for m in sys.modules})}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["p"], set(result["modules"])
