"""The prediction API: FastAPI, on Lambda through Mangum (HTTP API payload v2), locally by ``retrain serve``.

Endpoints keep the original shapes (SPEC.md, "The original API") and add ``model_version`` and ``as_of``
(the open time of the bar a prediction is for). Champions come from :class:`common.predictor.ModelCache`
(hot swap with zero downtime); ``/prediction`` features from :class:`common.serving.FeatureCache` (the
stored bars, last closed bar only; no data vendor on the request path).

Every bad input is a 4xx with a message: unknown fields and parameters, NaN/Infinity, oversized batches
(422), an unknown (symbol, trend) (404, naming the pair). No data or no servable model for a configured
pair is a 503 with the reason.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from common.errors import DataNotFoundError
from common.predictor import ModelCache, RegistrySource, ServedModel
from common.serving import FeatureCache, latest_features
from common.settings import TRENDS, Settings, get_settings

MAX_BATCH_ROWS = 1000
SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}$"
TrendType = Literal["uptrend", "downtrend"]
SymbolParam = Annotated[str, Query(pattern=SYMBOL_PATTERN, description="Ticker, e.g. BTC")]
TrendParam = Annotated[TrendType, Query(description="uptrend or downtrend")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class PerformanceMetrics(Strict):
    positive_accuracy: float | None = None
    negative_accuracy: float | None = None
    overall_score: float | None = None
    accuracy: float | None = None
    precision: float | None = None


class ModelSummary(Strict):
    symbol: str
    trend_type: TrendType
    model_version: str
    feature_importance: dict[str, float]
    performance_metrics: PerformanceMetrics
    target_pct: float | None
    prediction_window_days: int | None
    classifier: str | None = None
    trained_as_of: str | None = None


class PredictionResponse(Strict):
    prediction_probabilities: list[float] = Field(description="[P(no trend), P(trend)], as the original API")
    symbol: str
    trend_type: TrendType
    model_version: str
    as_of: datetime = Field(description="Open time of the closed bar the prediction is for")


class PredictRequest(Strict):
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    trend_type: TrendType
    rows: list[dict[str, float]] = Field(min_length=1, max_length=MAX_BATCH_ROWS, description="Feature rows")


class PredictResponse(Strict):
    symbol: str
    trend_type: TrendType
    model_version: str
    probabilities: list[float] = Field(description="P(trend) per row")


class Health(Strict):
    status: Literal["ok", "degraded"]
    loaded: dict[str, str] = Field(description="model -> version being served")
    rejected: dict[str, dict[str, str]] = Field(description="model -> versions never served, and why")
    last_bar: dict[str, datetime] = Field(description="symbol -> newest closed bar the features use")
    swaps: int
    rejected_loads: int


class Service:
    """What the endpoints need, created once per process (Lambda: per warm environment)."""

    def __init__(self, settings: Settings, models: ModelCache, features: FeatureCache) -> None:
        self.settings = settings
        self.models = models
        self.features = features

    @classmethod
    def from_settings(
        cls, settings: Settings, *, background: bool, clock: Callable[[], datetime] | None = None
    ) -> Service:
        """``clock`` is "now" for the features (default: the settings' as-of, else the time); a replay
        moves it day by day."""
        from common.bar_store import OhlcvStore
        from common.registry import Registry
        from common.storage import S3ObjectStore

        store = OhlcvStore(S3ObjectStore(settings.bucket))
        now = clock or settings.now

        def load(symbol: str, interval: str) -> Any:
            return latest_features(store, symbol, interval, as_of=now(), gap_policy=settings.gap_policy)

        models = ModelCache(
            RegistrySource(Registry(settings.tracking_uri)),
            refresh_seconds=settings.predictor_model_refresh_seconds,
            background=background,
        )
        return cls(settings, models, FeatureCache(load, refresh_seconds=settings.predictor_feature_refresh_seconds))

    def loaded_model(self, symbol: str, trend: str) -> ServedModel | None:
        """The model already in memory for a configured pair, without waiting for anything (None otherwise)."""
        return self.models.loaded_model(symbol, trend) if symbol in self.settings.symbols else None  # type: ignore[arg-type]

    def model(self, symbol: str, trend: str) -> ServedModel:
        if symbol not in self.settings.symbols:
            raise HTTPException(404, f"no model for {symbol} {trend}: {symbol} is not in the configured pool")
        served = self.models.get(symbol, trend)  # type: ignore[arg-type]
        if served is None:
            raise HTTPException(404, f"no model for {symbol} {trend}: no champion is registered yet")
        return served


@lru_cache(maxsize=1)
def default_service() -> Service:
    # Lambda serves one request at a time per environment and freezes it in between: refresh inline there.
    return Service.from_settings(get_settings(), background="AWS_LAMBDA_FUNCTION_NAME" not in os.environ)


def create_app(service_factory: Callable[[], Service] = default_service) -> FastAPI:
    app = FastAPI(
        title="retrain predictor",
        version="1",
        description="Champion predictions for the pool, hot-swapped as new champions are promoted.",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        return JSONResponse(status_code=422, content={"detail": message or "invalid request", "errors": errors})

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        svc = service_factory()
        loaded = {f"{s}_{t}": m.version for (s, t), m in svc.models.loaded().items()}
        rejected = {f"{s}_{t}": versions for (s, t), versions in svc.models.rejected().items()}
        last_bar = {symbol: row.bar for (symbol, _), row in svc.features.rows().items()}
        stats = svc.models.stats()
        return Health(
            status="degraded" if rejected else "ok",
            loaded=loaded,
            rejected=rejected,
            last_bar=last_bar,
            swaps=stats.swaps,
            rejected_loads=stats.rejected_loads,
        )

    @app.get("/models", response_model=list[ModelSummary])
    async def models() -> list[ModelSummary]:
        svc = service_factory()
        pairs = [(symbol, trend) for symbol in svc.settings.symbols for trend in TRENDS]
        served = await asyncio.gather(*(asyncio.to_thread(svc.models.get, s, t) for s, t in pairs))
        return [_summary(model) for model in served if model is not None]

    @app.get("/models/{symbol}/{trend_type}", response_model=ModelSummary)
    async def model(
        symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN)],
        trend_type: Annotated[TrendType, Path()],
    ) -> ModelSummary:
        svc = service_factory()
        return _summary(await asyncio.to_thread(svc.model, symbol, trend_type))

    @app.get("/prediction", response_model=PredictionResponse)
    async def prediction(request: Request, symbol: SymbolParam, trend_type: TrendParam) -> Any:
        _no_unknown_params(request, {"symbol", "trend_type"})
        svc = service_factory()
        # Warm path: both caches answer from memory and nothing blocks, so no thread hop; a cold or stale
        # entry (a registry or S3 read) runs in a worker thread so the event loop keeps serving.
        served = svc.loaded_model(symbol, trend_type) or await asyncio.to_thread(svc.model, symbol, trend_type)
        interval = svc.settings.interval
        row = svc.features.fresh(symbol, interval)
        if row is None:
            try:
                row = await asyncio.to_thread(svc.features.get, symbol, interval)
            except DataNotFoundError as exc:
                raise HTTPException(503, f"no features for {symbol}: {exc}") from None
        probability = served.probability(row)
        answer = PredictionResponse(
            prediction_probabilities=[1.0 - probability, probability],
            symbol=symbol,
            trend_type=trend_type,
            model_version=served.version,
            as_of=row.bar,
        )
        # Already validated by its construction: serialise once instead of FastAPI's validate-then-dump.
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Any:
        svc = service_factory()
        served = svc.loaded_model(body.symbol, body.trend_type) or await asyncio.to_thread(
            svc.model, body.symbol, body.trend_type
        )
        names = served.feature_names
        expected = set(names)
        for index, row in enumerate(body.rows):
            if row.keys() != expected:
                missing, unexpected = sorted(expected - row.keys()), sorted(row.keys() - expected)
                detail = f"rows[{index}]: missing features {missing}" if missing else f"rows[{index}]:"
                if unexpected:
                    detail += f" unexpected features {unexpected}"
                raise HTTPException(422, detail)
        probabilities = served.score(np.array([[row[name] for name in names] for row in body.rows], dtype="float64"))
        if not np.all(np.isfinite(probabilities)):
            raise HTTPException(422, "the model returned a non-finite probability for these rows")
        answer = PredictResponse(
            symbol=body.symbol,
            trend_type=body.trend_type,
            model_version=served.version,
            probabilities=probabilities.tolist(),
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    return app


def _no_unknown_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise HTTPException(422, f"unknown query parameters {unknown}; allowed: {sorted(allowed)}")


def _summary(served: ServedModel) -> ModelSummary:
    tags = served.tags
    metrics = tags.get("metrics") or {}
    known = PerformanceMetrics.model_fields
    importance = {str(k): float(v) for k, v in (tags.get("feature_importance") or {}).items()}
    return ModelSummary(
        symbol=served.symbol,
        trend_type=served.trend,
        model_version=served.version,
        feature_importance=importance,
        performance_metrics=PerformanceMetrics(
            **{k: _finite(metrics.get(k)) for k in known if isinstance(metrics.get(k), int | float)}
        ),
        target_pct=_finite(tags.get("target_pct")),
        prediction_window_days=int(tags["prediction_window"]) if tags.get("prediction_window") else None,
        classifier=tags.get("classifier"),
        trained_as_of=str(tags["trained_as_of"]) if tags.get("trained_as_of") else None,
    )


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


app = create_app()


def _lambda_handler() -> Any:
    from mangum import Mangum

    return Mangum(app, lifespan="off", api_gateway_base_path=None)


handler = _lambda_handler()
