"""The prediction API: FastAPI, on Lambda through Mangum (functions/predictor/app.py, HTTP API payload v2),
locally by ``retrain serve``.

Endpoints keep the shapes of the original system's API (``/models``, ``/prediction``, ``/predict``), so its
clients keep working, and add ``model_version`` and ``as_of``
(the open time of the bar a prediction is for). Champions come from :class:`common.serving.model_cache.ModelCache`
(hot swap with zero downtime); ``/prediction`` features from :class:`common.serving.feature_rows.FeatureCache` (the
stored bars, last closed bar only; no data vendor on the request path).

Every bad input is a 4xx with a message: unknown fields and parameters, NaN/Infinity, oversized batches
(422), an unknown (symbol, trend) (404, naming the pair). No data or no servable model for a configured
pair is a 503 with the reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.core.errors import DataNotFoundError
from common.core.numbers import finite_or_none
from common.core.settings import (
    SYMBOL_PATTERN,
    TRENDS,
    Interval,
    PoolEntry,
    Settings,
    Trend,
    get_settings,
    model_label,
    model_stem,
)
from common.data.features import FEATURE_NAMES
from common.serving.feature_rows import FeatureCache, FeatureRow, latest_features
from common.serving.model_cache import CacheEvent, ModelCache, RegistrySource, ServedModel

MAX_BATCH_ROWS = 1000
FEATURE_FIELDS = {name: f"feature_{index}" for index, name in enumerate(FEATURE_NAMES)}
SymbolParam = Annotated[str, Query(pattern=SYMBOL_PATTERN.pattern, description="Ticker, e.g. BTC")]
TrendParam = Annotated[Trend, Query(description="uptrend or downtrend")]
IntervalParam = Annotated[
    Interval, Query(description="Bars the model trades on: 1d (the default, the original API's) or 1h")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ErrorBody(Strict):
    """Every 4xx/5xx the API returns itself (404, 503, and the 422s it raises after validation)."""

    detail: str = Field(description="What was wrong, in words")


class ValidationIssue(Strict):
    loc: list[str | int] = Field(description="Where: e.g. ['query', 'symbol'] or ['body', 'rows', 0, 'PPO']")
    msg: str
    type: str


class ValidationErrorBody(Strict):
    """A request the schema refuses (422). ``detail`` is one line for people; ``errors`` lists each problem."""

    detail: str = Field(description="The first few problems, joined into one line")
    errors: list[ValidationIssue] = Field(
        default_factory=list, description="Each problem; empty for a 422 raised after validation"
    )


class PerformanceMetrics(Strict):
    positive_accuracy: float | None = None
    negative_accuracy: float | None = None
    overall_score: float | None = None
    accuracy: float | None = None
    precision: float | None = None


class ModelSummary(Strict):
    symbol: str
    trend_type: Trend
    interval: Interval = Field("1d", description="Bars the model trades on")
    model_version: str
    feature_importance: dict[str, float]
    performance_metrics: PerformanceMetrics
    target_pct: float | None
    prediction_window_days: int | None
    classifier: str | None = None
    trained_as_of: str | None = None
    status: Literal["serving", "suspended"] = Field(
        "serving", description="suspended: taken out of service on its live record (or by an operator)"
    )
    suspended_reason: str | None = Field(None, description="Why and since when, while suspended")


class PredictionResponse(Strict):
    """The original API's three fields, unchanged in name and type, then additions an old client ignores."""

    prediction_probabilities: float = Field(
        ge=0.0,
        le=1.0,
        description="P(trend): the probability that the trend follows, ONE number, exactly as the original API "
        "(its predict_proba(x)[0][1])",
    )
    symbol: str
    trend_type: Trend
    class_probabilities: list[float] = Field(
        min_length=2, max_length=2, description="[P(no trend), P(trend)]: both classes, in predict_proba's order"
    )
    model_name: str = Field(
        description="Registered model that answered, e.g. BTC_uptrend_model (XRP_1h_uptrend_model: hourly)"
    )
    model_version: str = Field(description="Registry version that answered (changes when a champion is swapped in)")
    as_of: datetime = Field(description="Open time of the closed bar the prediction is for")
    interval: Interval = Field("1d", description="Bars the model trades on (the bar of as_of is one of them)")


# The 19 features by their names (several start with a digit, so the fields go by alias): the schema lists
# each as a required number, so a client and a schema-driven tester know what a row must hold.
FeatureValues = create_model(
    "FeatureValues",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=False),
    __doc__="One row of the 19 features, each a finite number.",
    **{field: (float, Field(alias=name)) for name, field in FEATURE_FIELDS.items()},
)


class PredictRequest(Strict):
    symbol: str = Field(pattern=SYMBOL_PATTERN.pattern)
    trend_type: Trend
    interval: Interval = Field("1d", description="Bars the model trades on (default 1d)")
    rows: list[FeatureValues] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=MAX_BATCH_ROWS, description="Feature rows, scored as they are"
    )


class PredictResponse(Strict):
    symbol: str
    trend_type: Trend
    interval: Interval = "1d"
    model_version: str
    probabilities: list[float] = Field(description="P(trend) per row")


class Health(Strict):
    status: Literal["ok", "degraded"]
    loaded: dict[str, str] = Field(description="model -> version being served")
    rejected: dict[str, dict[str, str]] = Field(description="model -> versions never served, and why")
    last_bar: dict[str, datetime] = Field(
        description="symbol (daily) or SYMBOL:INTERVAL -> newest closed bar the features use"
    )
    swaps: int
    rejected_loads: int


class Service:
    """What the endpoints need, created once per process (Lambda: per warm environment)."""

    def __init__(self, settings: Settings, models: ModelCache, features: FeatureCache) -> None:
        self.settings = settings
        self.models = models
        self.features = features
        self.pool = frozenset(settings.pool)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        background: bool,
        clock: Callable[[], datetime] | None = None,
        on_event: Callable[[CacheEvent], None] | None = None,
    ) -> Service:
        """``clock`` is "now" for the features (default: the settings' as-of, else the time); a replay
        moves it day by day. ``on_event`` hears each swap and refused load (the Lambda adapter counts them)."""
        from common.aws.storage import S3ObjectStore
        from common.data.bar_store import OhlcvStore
        from common.registry.mlflow_rest import serving_registry

        store = OhlcvStore(S3ObjectStore(settings.bucket))
        now = clock or settings.now

        def load(symbol: str, interval: str) -> Any:
            return latest_features(store, symbol, interval, as_of=now(), gap_policy=settings.gap_policy)

        models = ModelCache(
            RegistrySource(serving_registry(settings.tracking_uri)),
            refresh_seconds=settings.predictor_model_refresh_seconds,
            background=background,
            on_event=on_event,
        )
        return cls(settings, models, FeatureCache(load, refresh_seconds=settings.predictor_feature_refresh_seconds))

    def loaded_model(self, symbol: str, trend: str, interval: str = "1d") -> ServedModel | None:
        """The serving model already in memory for a configured model, without waiting for anything (None
        otherwise: not loaded, or suspended, which :meth:`model` answers)."""
        if PoolEntry(symbol, interval) not in self.pool:  # type: ignore[arg-type]
            return None
        served = self.models.loaded_model(symbol, trend, interval)  # type: ignore[arg-type]
        return served if served is not None and served.suspension is None else None

    def model(self, symbol: str, trend: str, interval: str = "1d") -> ServedModel:
        """The model that answers predictions; 404 when there is none or it is suspended."""
        served = self.described(symbol, trend, interval)
        if served.suspension is not None:
            what = model_label(symbol, trend, interval)
            raise HTTPException(404, f"no model for {what}: v{served.version} is {served.suspension.text()}")
        return served

    def described(self, symbol: str, trend: str, interval: str = "1d") -> ServedModel:
        """The model's champion, serving or suspended (what ``/models`` describes); 404 when there is none."""
        what = model_label(symbol, trend, interval)
        if PoolEntry(symbol, interval) not in self.pool:  # type: ignore[arg-type]
            held = [e.interval for e in self.pool if e.symbol == symbol]
            why = (
                f"the pool holds {symbol} on {', '.join(held)} bars only"
                if held
                else f"{symbol} is not in the configured pool"
            )
            raise HTTPException(404, f"no model for {what}: {why}")
        served = self.models.get(symbol, trend, interval)  # type: ignore[arg-type]
        if served is None:
            raise HTTPException(404, f"no model for {what}: no champion is registered yet")
        return served


def process_service(on_event: Callable[[CacheEvent], None] | None = None) -> Callable[[], Service]:
    """The process's one :class:`Service` (Lambda: per warm environment), built on first use from the
    settings; ``on_event`` hears its model cache's swaps and refused loads (the Lambda adapter's metrics)."""

    @lru_cache(maxsize=1)
    def service() -> Service:
        # Lambda serves one request at a time per environment and freezes it in between: refresh inline there.
        background = "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        return Service.from_settings(get_settings(), background=background, on_event=on_event)

    return service


default_service = process_service()


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
        return JSONResponse(status_code=422, content={"detail": _one_line(errors), "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # One body per status, as the OpenAPI document declares it: a 422 raised after validation carries
        # the same keys as one raised by it.
        content: dict[str, Any] = {"detail": str(exc.detail)}
        if exc.status_code == 422:
            content["errors"] = []
        return JSONResponse(status_code=exc.status_code, content=content, headers=exc.headers)

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        svc = service_factory()
        loaded = {model_stem(s, t, i): m.version for (s, t, i), m in svc.models.loaded().items()}
        rejected = {model_stem(s, t, i): versions for (s, t, i), versions in svc.models.rejected().items()}
        last_bar = {
            symbol if interval == "1d" else f"{symbol}:{interval}": row.bar
            for (symbol, interval), row in svc.features.rows().items()
        }
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
        models = [(e.symbol, trend, e.interval) for e in svc.settings.pool for trend in TRENDS]
        served = await asyncio.gather(*(asyncio.to_thread(svc.models.get, s, t, i) for s, t, i in models))
        return [_summary(model) for model in served if model is not None]

    @app.get("/models/{symbol}/{trend_type}", response_model=ModelSummary, responses=_errors(404, 422))
    async def model(
        symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN.pattern)],
        trend_type: Annotated[Trend, Path()],
        interval: IntervalParam = "1d",
    ) -> ModelSummary:
        svc = service_factory()
        return _summary(await asyncio.to_thread(svc.described, symbol, trend_type, interval))

    @app.get("/prediction", response_model=PredictionResponse, responses=_errors(404, 422, 503))
    async def prediction(
        request: Request, symbol: SymbolParam, trend_type: TrendParam, interval: IntervalParam = "1d"
    ) -> Any:
        _no_unknown_params(request, {"symbol", "trend_type", "interval"})
        svc = service_factory()
        # Warm path: both caches answer from memory and nothing blocks, so no thread hop; a cold or stale
        # entry (a registry or S3 read) runs in a worker thread so the event loop keeps serving. On a cold
        # start both load, concurrently (the registry's round trips overlap the bars' read).
        served = svc.loaded_model(symbol, trend_type, interval)
        row = svc.features.fresh(symbol, interval)
        if served is None or row is None:
            served, row = await _served_and_row(svc, symbol, trend_type, interval, served, row)
        probability = served.probability(row)
        answer = PredictionResponse(
            prediction_probabilities=probability,
            symbol=symbol,
            trend_type=trend_type,
            class_probabilities=[1.0 - probability, probability],
            model_name=served.name,
            model_version=served.version,
            as_of=row.bar,
            interval=interval,
        )
        # Already validated by its construction: serialise once instead of FastAPI's validate-then-dump.
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post("/predict", response_model=PredictResponse, responses=_errors(400, 404, 422, 503))
    async def predict(body: PredictRequest) -> Any:
        svc = service_factory()
        served = svc.loaded_model(body.symbol, body.trend_type, body.interval) or await asyncio.to_thread(
            svc.model, body.symbol, body.trend_type, body.interval
        )
        unknown = [name for name in served.feature_names if name not in FEATURE_FIELDS]
        if unknown:  # a version trained on columns this API does not take: it cannot be asked here
            raise HTTPException(
                503, f"{served.name} v{served.version} scores features this API does not take: {unknown}"
            )
        fields = [FEATURE_FIELDS[name] for name in served.feature_names]
        matrix = np.array([[getattr(row, field) for field in fields] for row in body.rows], dtype="float64")
        probabilities = served.score(matrix)
        if not np.all(np.isfinite(probabilities)):
            raise HTTPException(422, "the model returned a non-finite probability for these rows")
        answer = PredictResponse(
            symbol=body.symbol,
            trend_type=body.trend_type,
            interval=body.interval,
            model_version=served.version,
            probabilities=probabilities.tolist(),
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    return app


_ERROR_MEANINGS = {
    400: "The body could not be read at all (e.g. bytes that are not UTF-8 text)",
    404: "No model for this (symbol, trend): not in the configured pool, or no champion registered yet",
    422: "The request does not fit the schema (the body says where), or the model could not score it",
    503: "A configured pair has no features to score (no stored bars yet) or a model this endpoint cannot ask",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error statuses a route returns, each with the body it really has, for the OpenAPI document."""
    return {
        status: {"model": ValidationErrorBody if status == 422 else ErrorBody, "description": _ERROR_MEANINGS[status]}
        for status in statuses
    }


def _one_line(errors: list[dict[str, Any]], shown: int = 5) -> str:
    """The problems of a refused request in one line: missing fields grouped per place ("body.rows.0: missing
    [...]", so a row without its 19 features reads as one problem), then the first few others."""
    missing: dict[str, list[str]] = {}
    others = []
    for error in errors:
        path = [str(part) for part in error["loc"]]
        if error["type"] == "missing" and len(path) > 1:
            missing.setdefault(".".join(path[:-1]), []).append(path[-1])
        else:
            others.append(f"{'.'.join(path)}: {error['msg']}")
    parts = [f"{place}: missing {names}" for place, names in missing.items()] + others
    text = "; ".join(parts[:shown]) + (f"; and {len(parts) - shown} more" if len(parts) > shown else "")
    return text or "invalid request"


async def _served_and_row(
    svc: Service, symbol: str, trend: str, interval: str, served: ServedModel | None, row: FeatureRow | None
) -> tuple[ServedModel, FeatureRow]:
    """The pair's model and the symbol's feature row, whichever is not in memory loaded in a worker thread;
    both at once on a cold start (the registry's round trips overlap the bars' read). Errors as one at a
    time would raise them: the model's (404) before the features' (503)."""

    async def model() -> ServedModel:
        return served or await asyncio.to_thread(svc.model, symbol, trend, interval)

    async def features() -> FeatureRow:
        try:
            return row or await asyncio.to_thread(svc.features.get, symbol, interval)
        except DataNotFoundError as exc:
            raise HTTPException(503, f"no features for {symbol}: {exc}") from None

    if PoolEntry(symbol, interval) not in svc.pool:  # type: ignore[arg-type]  # a 404 without reading anything
        return await model(), await features()
    outcomes = await asyncio.gather(model(), features(), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


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
        interval=served.interval,  # type: ignore[arg-type]
        model_version=served.version,
        feature_importance=importance,
        performance_metrics=PerformanceMetrics(
            **{k: finite_or_none(metrics.get(k)) for k in known if isinstance(metrics.get(k), int | float)}
        ),
        target_pct=finite_or_none(tags.get("target_pct")),
        prediction_window_days=int(tags["prediction_window"]) if tags.get("prediction_window") else None,
        classifier=tags.get("classifier"),
        trained_as_of=str(tags["trained_as_of"]) if tags.get("trained_as_of") else None,
        status="suspended" if served.suspension else "serving",
        suspended_reason=served.suspension.text() if served.suspension else None,
    )
