"""common.training.scorer: the serving scorer is exact (it matches predict_proba on every classifier of the zoo, fitted
the way training fits them) and refuses what it cannot score correctly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.core.settings import ALL_CLASSIFIERS
from common.data.features import FEATURE_NAMES
from common.training.evaluation import fit_classifier, make_classifier
from common.training.scorer import _BOOSTER_SCORERS, compile_scorer, positive_probability
from tests.boosters import early_stopped_lightgbm


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    index = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    X = pd.DataFrame(rng.normal(size=(300, len(FEATURE_NAMES))), index=index, columns=list(FEATURE_NAMES))
    y = pd.Series((X["PPO"] + 0.5 * X["MACD"] + rng.normal(scale=0.8, size=300) > 0).astype(int), index=index)
    return X, y


@pytest.mark.parametrize("name", ALL_CLASSIFIERS)
def test_compiled_scorer_matches_predict_proba_for_every_zoo_classifier(name: str, data) -> None:
    X, y = data
    model = fit_classifier(make_classifier(name, y_train=y, seed=5), X, y)
    score = compile_scorer(model, FEATURE_NAMES)
    rows = X.tail(40)
    expected = positive_probability(model, rows)
    np.testing.assert_allclose(score(rows.to_numpy()), expected, rtol=0, atol=1e-12)
    # one row, against one row: k-neighbours' distances differ in the last bits between batch sizes
    np.testing.assert_allclose(score(rows.to_numpy()[-1:]), positive_probability(model, rows.tail(1)), atol=1e-12)


BOOSTERS = {"lightgbm": "lightgbm", "xgboost": "xgboost", "sklearn": "hist_gradient_boosting"}


@pytest.mark.parametrize("library", sorted(_BOOSTER_SCORERS))
def test_boosters_are_scored_through_the_booster_not_predict_proba(library: str, data) -> None:
    X, y = data
    model = fit_classifier(make_classifier(BOOSTERS[library], y_train=y, seed=5), X, y)  # type: ignore[arg-type]
    score = compile_scorer(model, FEATURE_NAMES)

    def forbidden(*args, **kwargs):
        raise AssertionError("predict_proba called on the fast path")

    model.predict_proba = forbidden
    assert score(X.tail(3).to_numpy()).shape == (3,)


def test_a_booster_on_other_labels_falls_back_to_predict_proba_with_the_right_column(data) -> None:
    from lightgbm import LGBMClassifier

    X, y = data
    model = LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y.map({0: 1, 1: 0}))  # label 1 first
    score = compile_scorer(model, FEATURE_NAMES)
    np.testing.assert_allclose(score(X.tail(5).to_numpy()), model.predict_proba(X.tail(5))[:, 1], atol=1e-12)


def test_multiclass_and_label_less_models_are_refused(data) -> None:
    from lightgbm import LGBMClassifier

    X, y = data
    multiclass = LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, pd.cut(X["PPO"], 3, labels=False))
    with pytest.raises(ValueError, match="binary"):
        compile_scorer(multiclass, FEATURE_NAMES)(X.tail(2).to_numpy())
    two_other_labels = LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y + 5)
    with pytest.raises(ValueError, match="label 1"):
        compile_scorer(two_other_labels, FEATURE_NAMES)(X.tail(2).to_numpy())


def test_a_pyfunc_like_model_gets_a_frame_with_the_feature_names(data) -> None:
    X, _ = data
    seen: list[list[str]] = []

    class PyfuncLike:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            seen.append(list(rows.columns))
            return np.column_stack([1 - rows["PPO"].abs() / 10, rows["PPO"].abs() / 10])

    probabilities = compile_scorer(PyfuncLike(), FEATURE_NAMES)(X.tail(2).to_numpy())
    assert seen == [list(FEATURE_NAMES)]
    np.testing.assert_allclose(probabilities, X["PPO"].tail(2).abs().to_numpy() / 10)


def test_lightgbm_single_rows_use_the_c_single_row_call_and_match_predict_proba(data) -> None:
    X, y = data
    model = early_stopped_lightgbm(X, y)
    assert 0 < model.best_iteration_ < 200  # predict_proba uses the best iteration; so must the C call
    expected = model.predict_proba(X.iloc[250:])[:, 1]
    score = compile_scorer(model, FEATURE_NAMES)
    calls: list[int] = []
    batch = model.booster_.predict
    model.booster_.predict = lambda *a, **k: calls.append(1) or batch(*a, **k)
    singles = [score(X.iloc[[position]].to_numpy())[0] for position in range(250, 300)]
    np.testing.assert_allclose(singles, expected, rtol=0, atol=1e-12)
    assert calls == []  # every one-row call went through the single-row path
    np.testing.assert_allclose(score(X.iloc[250:].to_numpy()), expected, rtol=0, atol=1e-12)
    assert calls == [1]  # several rows: one batch call
    with pytest.raises(ValueError, match="expected 19 features"):
        score(X.tail(1).to_numpy()[:, :5])


def test_a_fast_path_that_breaks_falls_back_to_predict_proba(data, monkeypatch) -> None:
    """The booster paths use library internals; if a release changes them the model is still served."""
    X, y = data
    model = make_classifier("lightgbm", y_train=y, seed=5).fit(X, y)

    def moved_internals(booster):
        raise AttributeError("'Booster' object has no attribute '_handle'")

    monkeypatch.setattr("common.training.scorer._lightgbm_single_row", moved_internals)
    score = compile_scorer(model, FEATURE_NAMES)
    np.testing.assert_allclose(score(X.tail(4).to_numpy()), positive_probability(model, X.tail(4)), atol=1e-12)
    np.testing.assert_allclose(score(X.tail(1).to_numpy()), positive_probability(model, X.tail(1)), atol=1e-12)
