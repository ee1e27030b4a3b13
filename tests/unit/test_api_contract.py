"""The prediction API's OpenAPI document tells the truth: schemathesis (its default checks: no 5xx, documented
status codes, bodies matching the declared schemas, valid data accepted, invalid data refused) runs against the
app served over a real socket, a bounded number of examples per operation, and must find nothing.

The app is the real one (FastAPI routes, the model cache, the real scorer of a fitted LightGBM); only the
registry and the stored bars are fakes, so every configured pair has data and the answers are the served ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.core.settings import load_settings
from common.data.features import FEATURE_NAMES
from common.registry.mlflow_registry import VersionInfo
from common.serving.api import Service, create_app
from common.serving.feature_rows import FeatureCache
from common.serving.model_cache import CheckedModel, ModelCache
from common.training.scorer import compile_scorer
from retrain.loopback import serving
from tests.unit.test_predictor import FakeSource, _row

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = 100
SEED = 20261203  # fixed: a failure in CI replays the same requests here


class LightgbmSource(FakeSource):
    """Champions as in the registry fake, each a small LightGBM fitted on random features: real trees score
    whatever finite numbers schemathesis sends."""

    def load(self, info: VersionInfo) -> Any:
        import lightgbm

        rng = np.random.default_rng(int(info.version))
        X = pd.DataFrame(rng.normal(size=(300, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
        y = (X["PPO"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
        model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, random_state=0).fit(X, y)
        return CheckedModel(model, compile_scorer(model, FEATURE_NAMES), FEATURE_NAMES)


@pytest.fixture(scope="module")
def api_url() -> Any:
    source = LightgbmSource()
    source.aliases.update({"BTC_uptrend_model": "7", "BTC_downtrend_model": "2", "ETH_uptrend_model": "3"})
    settings = load_settings(symbols=("BTC", "ETH", "SOL"), data_bucket="unused")  # SOL: no champion (404)
    service = Service(settings, ModelCache(source, background=False), FeatureCache(lambda s, i: _row(s)))
    with serving(create_app(lambda: service)) as url:
        yield url


def test_schemathesis_finds_nothing_against_the_live_app(api_url: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{api_url}/openapi.json",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        f"--seed={SEED}",
        "--generation-database=none",
        "--request-timeout=30",
        "--no-color",
        "--report=junit",
        f"--report-dir={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = result.stdout[-6000:]
    assert result.returncode == 0, f"schemathesis found problems:\n{summary}\n{result.stderr[-2000:]}"
    assert "5 selected / 5 total" in result.stdout and "No issues found" in result.stdout, summary


def test_the_document_lists_every_error_the_routes_return(api_url: str) -> None:
    import httpx

    document = httpx.get(f"{api_url}/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/prediction"]["get"]["responses"]) == {"200", "404", "422", "503"}
    assert set(paths["/models/{symbol}/{trend_type}"]["get"]["responses"]) == {"200", "404", "422"}
    assert set(paths["/predict"]["post"]["responses"]) == {"200", "400", "404", "422", "503"}
    schemas = document["components"]["schemas"]
    assert schemas["ValidationErrorBody"]["properties"]["detail"]["type"] == "string"
    assert set(schemas["FeatureValues"]["required"]) == set(FEATURE_NAMES)
    assert schemas["PredictionResponse"]["properties"]["prediction_probabilities"]["type"] == "number"
    # The answers the earlier document got wrong (issue 15), now as declared.
    unknown_pair = httpx.get(f"{api_url}/models/SOL/downtrend")
    assert unknown_pair.status_code == 404 and isinstance(unknown_pair.json()["detail"], str)
    no_body = httpx.post(f"{api_url}/predict")
    assert no_body.status_code == 422 and isinstance(no_body.json()["detail"], str) and no_body.json()["errors"]
    empty_row = httpx.post(f"{api_url}/predict", json={"symbol": "BTC", "trend_type": "uptrend", "rows": [{}]})
    detail = empty_row.json()["detail"]
    assert empty_row.status_code == 422 and detail.startswith("body.rows.0: missing ['7_day_ADX', 'AroonDown'")
    assert all(name in detail for name in FEATURE_NAMES) and len(empty_row.json()["errors"]) == len(FEATURE_NAMES)
