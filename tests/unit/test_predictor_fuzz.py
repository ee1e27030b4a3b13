"""Fuzzing the prediction API from its own OpenAPI schema's inputs (hypothesis): arbitrary query strings,
path segments and JSON bodies on every endpoint never produce a 5xx (issue 6: zero 5xx)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.core.settings import load_settings
from common.data.features import FEATURE_NAMES
from common.serving.api import Service, create_app
from common.serving.feature_rows import FeatureCache
from common.serving.model_cache import ModelCache
from tests.unit.test_predictor import FakeSource, _row

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
SYMBOLS = st.one_of(st.sampled_from(["BTC", "ETH", "SOL", "btc", ""]), TEXT)
TRENDS = st.one_of(st.sampled_from(["uptrend", "downtrend", "flat", ""]), TEXT)
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none(), TEXT)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.integers(), TEXT),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
ROWS = st.lists(
    st.dictionaries(st.one_of(st.sampled_from(FEATURE_NAMES), TEXT), NUMBERS, max_size=len(FEATURE_NAMES) + 2),
    max_size=4,
) | st.lists(st.fixed_dictionaries({name: NUMBERS for name in FEATURE_NAMES}), min_size=1, max_size=3)
BODIES = st.one_of(
    st.fixed_dictionaries({"symbol": SYMBOLS, "trend_type": TRENDS, "rows": ROWS}),
    st.fixed_dictionaries({"symbol": SYMBOLS, "trend_type": TRENDS, "rows": ROWS}, optional={"extra": JSON_VALUES}),
    JSON_VALUES,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def client() -> TestClient:
    source = FakeSource()
    source.aliases.update({"BTC_uptrend_model": "7", "BTC_downtrend_model": "2"})
    settings_ = load_settings(symbols=("BTC", "ETH"), data_bucket="unused")
    service = Service(settings_, ModelCache(source, background=False), FeatureCache(lambda s, i: _row(s)))
    return TestClient(create_app(lambda: service), raise_server_exceptions=False)


def _no_5xx(response: Any) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)


@FUZZ
@given(params=st.dictionaries(st.one_of(st.sampled_from(["symbol", "trend_type"]), TEXT), TEXT, max_size=4))
def test_prediction_query_strings(client: TestClient, params: dict[str, str]) -> None:
    _no_5xx(client.get("/prediction", params=params))


@FUZZ
@given(symbol=SYMBOLS, trend=TRENDS)
def test_model_paths(client: TestClient, symbol: str, trend: str) -> None:
    from urllib.parse import quote

    _no_5xx(client.get(f"/models/{quote(symbol, safe='')}/{quote(trend, safe='')}"))


@FUZZ
@given(body=BODIES)
def test_predict_bodies(client: TestClient, body: Any) -> None:
    payload = json.dumps(body, allow_nan=True)  # NaN/Infinity tokens too: the API must refuse them with a 4xx
    _no_5xx(client.post("/predict", content=payload, headers={"content-type": "application/json"}))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_predict_raw_bytes(client: TestClient, raw: bytes) -> None:
    _no_5xx(client.post("/predict", content=raw, headers={"content-type": "application/json"}))


def test_every_schema_path_is_fuzzed(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert paths == {"/health", "/models", "/models/{symbol}/{trend_type}", "/prediction", "/predict"}
    for path in ("/health", "/models"):
        _no_5xx(client.get(path))
