"""One typed settings object for every component, read from the environment and validated once.

Every field maps to an environment variable ``RETRAIN_<FIELD_NAME>`` (upper case). List fields take
comma-separated values (``RETRAIN_SYMBOLS=BTC,ETH,SOL``). The MLflow tracking URI also honours the
standard ``MLFLOW_TRACKING_URI``. AWS endpoints, region and credentials are left to boto3's own
configuration (``AWS_REGION``, ``AWS_ENDPOINT_URL``, ...), so the same code talks to AWS or to the
embedded stack without a branch.

Nothing is read at import time: call :func:`get_settings` (cached) or :func:`load_settings`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.core.errors import ConfigurationError

#: Symbols of the bundled sample data (``sample_data/ohlcv/1d``); the default pool.
DEFAULT_SYMBOLS: tuple[str, ...] = (
    "AAVE", "ADA", "AVAX", "BCH", "BNB", "BTC", "DOGE", "DOT",
    "ETH", "LINK", "LTC", "SOL", "TRX", "UNI", "XLM", "XRP",
)  # fmt: skip

Interval = Literal["1d", "1h"]
INTERVALS: tuple[Interval, ...] = ("1d", "1h")
Trend = Literal["uptrend", "downtrend"]
TRENDS: tuple[Trend, ...] = ("uptrend", "downtrend")
NotificationChannel = Literal["outbox", "telegram"]
DriftRule = Literal["adaptive", "fixed"]
GapPolicy = Literal["report", "fill", "reject"]
GateRule = Literal["original", "risk", "edge"]
TriggerName = Literal["schedule", "performance", "drift"]
TRIGGER_NAMES: tuple[TriggerName, ...] = ("schedule", "performance", "drift")
PromotionRule = Literal["not_worse", "evidence", "always"]
PerformanceRule = Literal["evidence", "window"]
ClassifierName = Literal[
    "random_forest", "svc", "xgboost", "hist_gradient_boosting", "ada_boost",
    "ridge", "k_neighbors", "mlp", "lightgbm",
]  # fmt: skip
ALL_CLASSIFIERS: tuple[ClassifierName, ...] = (
    "random_forest", "svc", "xgboost", "hist_gradient_boosting", "ada_boost",
    "ridge", "k_neighbors", "mlp", "lightgbm",
)  # fmt: skip
ProviderName = Literal["binance", "replay"]

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,15}$")
#: The symbol rule in words, for every message that refuses a name.
SYMBOL_RULE = "symbol names allow only the characters A-Z and 0-9, at most 15 of them: BTC, 1INCH"
# Tracking URI schemes MLflow's client understands; anything else is a typo we should catch early.
_TRACKING_SCHEMES = {"http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks"}
# SageMaker-managed MLflow is addressed by the tracking server's ARN.
_SAGEMAKER_MLFLOW_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-tracking-server/[\w-]+$")


def is_symbol(text: str) -> bool:
    """A symbol name: also what a replay file may be called (``{SYMBOL}.csv``), so never a path."""
    return bool(SYMBOL_PATTERN.match(text))


def as_utc(value: datetime) -> datetime:
    """Naive times are UTC (the convention of every timestamp here); aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of the retraining system, from ``RETRAIN_*`` environment variables. Defaults are the
    original system's values where it had one; the rules added since were chosen on the development period
    (docs/backtests/choosing-defaults.md)."""

    model_config = SettingsConfigDict(
        env_prefix="RETRAIN_",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        validate_default=True,
        loc_by_alias=False,  # errors name the field; environment_names() maps it to the variables
    )

    # --- storage and registry -------------------------------------------------------------------
    data_bucket: str | None = Field(None, description="S3 bucket holding OHLCV, run artifacts, decisions, outbox.")
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("RETRAIN_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking server: http(s) URL, SageMaker MLflow ARN, or a local store URI.",
    )
    state_machine_arn: str | None = Field(None, description="ARN of the training state machine.")

    # --- model pool -----------------------------------------------------------------------------
    interval: Interval = Field(
        "1d", description="Bar interval of the pool's entries that name none (1d or 1h); entries may name their own."
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_SYMBOLS,
        description="The model pool (comma-separated): each entry a symbol, trained on RETRAIN_INTERVAL's bars, or "
        "SYMBOL:INTERVAL (BTC,ETH,XRP:1h,DOGE:1h: daily BTC and ETH, hourly XRP and DOGE). Each entry is two models "
        "(uptrend, downtrend).",
    )
    prediction_window: int = Field(10, ge=1, le=500, description="Label horizon h, in bars.")
    target_up_pct: float = Field(0.05, gt=0, lt=10, description="Uptrend label: SMA10 change >= +x.")
    target_down_pct: float = Field(
        0.05, gt=0, lt=1, description="Downtrend label: SMA10 change <= -x (given as a positive number)."
    )

    # --- market data ----------------------------------------------------------------------------
    gap_policy: GapPolicy = Field(
        "report",
        description="Missing bars: report (keep the bars as they are, log and count the gaps), "
        "fill (insert flat bars at the previous close with zero volume), reject (refuse the series).",
    )
    stale_after_bars: int = Field(
        2, ge=1, le=1000, description="Data is stale when the last closed bar is older than this many intervals."
    )
    market_data_provider: ProviderName = Field(
        "binance", description="Where ingestion fetches candles: binance (klines API) or replay (local CSVs)."
    )
    market_data_url: str = Field(
        "https://data-api.binance.vision", description="Base URL of the Binance-compatible klines API."
    )
    market_data_quote: str = Field(
        "USDT", pattern=r"^[A-Z0-9]{2,10}$", description="Quote asset appended to each symbol (BTC -> BTCUSDT)."
    )
    market_data_secret_name: str | None = Field(
        None, description="Secrets Manager secret with the data vendor's API key, if the vendor needs one."
    )
    market_data_replay_dir: str | None = Field(
        None, description="replay provider: folder with {interval}/{SYMBOL}.csv (e.g. sample_data/ohlcv)."
    )
    http_timeout_s: float = Field(10.0, gt=0, le=120, description="Per-request timeout of the data vendor API.")
    http_max_attempts: int = Field(5, ge=1, le=20, description="Attempts per request (retries on 429/5xx/timeouts).")
    ingest_backfill_bars: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Bars fetched for a symbol with no stored history yet (unset: 1000 daily or two years of "
        "hourly bars from a vendor, the whole file from a replay folder).",
    )

    # --- training ---------------------------------------------------------------------------------
    train_classifiers: Annotated[tuple[ClassifierName, ...], NoDecode] = Field(
        ALL_CLASSIFIERS, description="Candidates trained per model (comma-separated; default: the 9-model zoo)."
    )
    train_splits: int = Field(5, ge=2, le=20, description="Walk-forward folds.")
    train_test_size: int = Field(60, ge=10, le=5000, description="Bars per walk-forward test fold.")
    train_purge_bars: int | None = Field(
        None, ge=1, description="Bars left out between training and test (default and minimum: the prediction window)."
    )
    train_seed: int = Field(42, description="Seed of every random choice in training (reproducible runs).")
    cost_per_trade: float = Field(0.001, ge=0, lt=0.1, description="Strategy cost per position change (0.001 = 10 bp).")
    shap_max_rows: int = Field(200, ge=10, le=5000, description="Rows explained by SHAP (the newest ones).")
    shap_background_rows: int = Field(50, ge=5, le=1000, description="Sampled background rows for model-agnostic SHAP.")
    shap_time_budget_s: float = Field(15.0, gt=0, description="Model-agnostic SHAP stops adding rows after this.")

    # --- hourly models (settings in bars whose daily value does not fit an hourly model) ---------------
    # 0.5 %: on 2023's hourly bars (development) it labels 31-32 % of bars in each trend, as 5 % labels daily
    # bars on 2019-2021 (38 % up, 27 % down); 5 % in ten hours labels about 1 %. docs/concepts/hourly.md
    hourly_target_up_pct: float = Field(
        0.005, gt=0, lt=10, description="Hourly models' uptrend label: SMA10 change >= +x (hours move less than days)."
    )
    hourly_target_down_pct: float = Field(
        0.005, gt=0, lt=1, description="Hourly models' downtrend label: SMA10 change <= -x (a positive number)."
    )
    hourly_train_test_size: int = Field(
        720, ge=10, le=50_000, description="Hourly models' bars per walk-forward test fold (720 = 30 days)."
    )
    hourly_drift_window_bars: int = Field(
        720, ge=5, le=100_000, description="Hourly models' newest closed bars compared with the reference (30 days)."
    )

    # --- promotion gate (defaults chosen on the 2019-2021 backtest: docs/backtests/choosing-defaults.md) ---
    gate_rule: GateRule = Field(
        "edge",
        description="original: positive/negative accuracy and overall_score; risk: accuracy, Sharpe, drawdown; "
        "edge: the strategy beats not trading and the naive baseline, by lower confidence bounds.",
    )
    gate_min_sharpe_lcb: float = Field(
        0.0, description="Edge gate: the lower confidence bound of the strategy's Sharpe must be above this."
    )
    gate_edge_level: float = Field(
        0.9, gt=0.5, lt=1, description="Edge gate: confidence level of its one-sided lower bounds (block bootstrap)."
    )
    gate_use_honest: bool = Field(
        True,
        description="The gate also judges the selection-aware estimate of the whole procedure (the classifier chosen "
        "on earlier folds, scored on the next), not only the winning candidate's own walk-forward score.",
    )
    gate_min_accuracy: float = Field(0.5, ge=0, le=1, description="Risk gate: accuracy at least this.")
    gate_min_sharpe: float = Field(0.0, description="Risk gate: strategy Sharpe ratio at least this.")
    gate_max_drawdown: float = Field(0.5, gt=0, le=1, description="Risk gate: max drawdown at most this (0.5 = -50 %).")
    promotion_rule: PromotionRule = Field(
        "evidence",
        description="not_worse: a challenger that passed the gate replaces the champion only if it is not worse "
        "on the same bars (or their walk-forward estimates); evidence: only if its Brier is lower on the same bars "
        "by more than noise, or the champion is older than RETRAIN_PROMOTION_MAX_AGE_DAYS; always: every challenger "
        "that passed the gate does. A suspended or failing champion is replaced under every rule.",
    )
    promotion_alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Evidence rule: significance of 'the challenger's Brier is lower on the same bars'.",
    )
    promotion_max_age_days: float = Field(
        90,
        gt=0,
        description="Evidence rule: with too few bars to compare, a champion older than this is replaced by a "
        "challenger that passed the gate.",
    )
    suspend_on_evidence: bool = Field(
        True,
        description="Suspend a champion whose live record says it is worse than not trading when no challenger "
        "passes the gate (the API answers 404 for it until one does).",
    )
    promotion_min_compare_bars: int = Field(
        30, ge=1, description="Fewest bars unseen by the champion to compare it with a challenger directly."
    )
    gate_min_positive_accuracy: float = Field(0.5, ge=0, le=1, description="Gate: TP/(TP+FN) above this.")
    gate_min_negative_accuracy: float = Field(0.5, ge=0, le=1, description="Gate: TN/(TN+FP) above this.")
    gate_min_overall_score: float = Field(0.6, ge=0, le=1, description="Gate: overall_score above this.")

    # --- retraining triggers --------------------------------------------------------------------
    perf_rule: PerformanceRule = Field(
        "evidence",
        description="evidence: the champion's resolved outcomes since it went live against its promised Brier, the "
        "naive baseline and not trading, with tests that allow for overlapping outcomes; window: the original "
        "rule (live accuracy over RETRAIN_PERF_WINDOW_DAYS below RETRAIN_PERF_ACCURACY_THRESHOLD).",
    )
    perf_evidence_alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="Evidence rule: one-sided significance of each test (checked daily, so small).",
    )
    perf_min_outcomes: int = Field(
        30, ge=2, description="Evidence rule: fewer resolved outcomes since going live are too few to judge."
    )
    perf_accuracy_threshold: float = Field(0.52, gt=0, lt=1, description="Live accuracy below this fires.")
    perf_window_days: int = Field(14, ge=1, description="Rolling window of live predictions, days.")
    perf_min_predictions: int = Field(100, ge=1, description="Fewer resolved predictions: insufficient.")
    perf_alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Performance fires only if accuracy is below the threshold at this significance.",
    )
    drift_window_bars: int = Field(90, ge=5, le=100_000, description="Newest closed bars compared with the reference.")
    drift_alpha: float = Field(0.05, gt=0, lt=0.5, description="Adaptive rule: family-wise false-alarm rate per check.")
    drift_min_rows: int = Field(
        20, ge=2, description="A feature with fewer current values is 'insufficient_data', never drift."
    )
    drift_rule: DriftRule = Field(
        "adaptive", description="adaptive: sample-size-aware PSI threshold; fixed: the original rule."
    )
    psi_bins: int = Field(10, ge=2, le=100, description="PSI bins at the training data's quantiles.")
    psi_feature_threshold: float = Field(0.2, gt=0, description="Fixed rule: a feature drifted if PSI > x.")
    psi_max_threshold: float = Field(0.25, gt=0, description="Fixed rule: retrain if max PSI > x.")
    psi_max_drifted_features: int = Field(3, ge=0, description="Fixed rule: retrain if more drifted.")
    triggers: Annotated[tuple[TriggerName, ...], NoDecode] = Field(
        TRIGGER_NAMES,
        description="Triggers that may start a retrain (comma-separated: schedule, performance, drift); the "
        "others are recorded as off. A model without a champion is trained whatever this says.",
    )
    max_model_age_days: int = Field(7, ge=1, description="Schedule trigger: champion older than this.")
    no_model_retry_days: float = Field(
        7,
        gt=0,
        description="A model without a champion whose last training produced none (nothing passed the gate) "
        "is tried again after this many days, not every day.",
    )
    cooldown_days: float = Field(
        3,
        ge=0,
        description="Triggers that fire within this many days of a model's last completed retrain are recorded "
        "but start nothing (a lost challenger leaves the same drift and accuracy behind); 0 acts on every firing.",
    )

    # --- notifications --------------------------------------------------------------------------
    notify_channels: Annotated[tuple[NotificationChannel, ...], NoDecode] = Field(
        ("outbox",), description="Where notifications go: outbox (S3) and/or telegram."
    )
    telegram_secret_name: str | None = Field(
        None, description="Secrets Manager secret holding the Telegram bot token (never the token itself)."
    )
    telegram_chat_id: str | None = Field(
        None, description="Telegram chat that receives notifications (or `chat_id` in the secret)."
    )

    # --- predictor ------------------------------------------------------------------------------
    predictor_model_refresh_seconds: float = Field(
        30.0, ge=0, le=86400, description="Predictor: re-resolve each champion alias at most this often."
    )
    predictor_feature_refresh_seconds: float = Field(
        60.0, ge=0, le=86400, description="Predictor: recompute the latest feature row at most this often."
    )

    # --- clock ----------------------------------------------------------------------------------
    as_of: UtcDatetime | None = Field(
        None, description="Explicit as-of time (ISO 8601, UTC) for replays; unset means now."
    )

    @field_validator("symbols", "notify_channels", "train_classifiers", "triggers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("symbols")
    @classmethod
    def _valid_pool(cls, symbols: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not symbols:
            raise ValueError("at least one symbol is required")
        default_interval = info.data.get("interval", "1d")  # validated first: it is declared first
        seen: dict[PoolEntry, str] = {}
        for text in symbols:
            entry = parse_pool_entry(text, default_interval)
            if entry in seen:
                raise ValueError(f"pool entry {text!r} repeats {seen[entry]!r}: {entry} is listed twice")
            seen[entry] = text
        return symbols

    @field_validator("data_bucket")
    @classmethod
    def _valid_bucket(cls, name: str | None) -> str | None:
        if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name):
            raise ValueError(f"{name!r} is not a valid S3 bucket name")
        return name

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _valid_tracking_uri(cls, uri: str | None) -> str | None:
        if uri is None or uri == "databricks" or _SAGEMAKER_MLFLOW_ARN.match(uri):
            return uri
        parsed = urlparse(uri)
        if parsed.scheme not in _TRACKING_SCHEMES:
            raise ValueError(
                f"{uri!r} is not an MLflow tracking URI: expected one of "
                f"{sorted(_TRACKING_SCHEMES)} schemes or a SageMaker MLflow tracking-server ARN"
            )
        if parsed.scheme in {"http", "https"} and not parsed.hostname:
            raise ValueError(f"{uri!r} has no host")
        return uri

    @field_validator("triggers")
    @classmethod
    def _distinct_triggers(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(names))

    @field_validator("train_classifiers")
    @classmethod
    def _some_classifiers(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if not names:
            raise ValueError("at least one classifier is required")
        return tuple(dict.fromkeys(names))

    @model_validator(mode="after")
    def _purge_covers_the_label_horizon(self) -> Settings:
        if self.train_purge_bars is not None and self.train_purge_bars < self.prediction_window:
            raise ValueError(
                f"train_purge_bars ({self.train_purge_bars}) must be at least the prediction window "
                f"({self.prediction_window}): labels look that far ahead"
            )
        return self

    @property
    def purge_bars(self) -> int:
        return self.train_purge_bars or self.prediction_window

    @model_validator(mode="after")
    def _telegram_needs_credentials(self) -> Settings:
        if "telegram" in self.notify_channels and not self.telegram_secret_name:
            raise ValueError(
                "notify_channels includes telegram: set RETRAIN_TELEGRAM_SECRET_NAME (a secret with the bot token, "
                'e.g. {"token": "...", "chat_id": "..."}; RETRAIN_TELEGRAM_CHAT_ID may give the chat instead)'
            )
        return self

    @property
    def bucket(self) -> str:
        """The data bucket; a clear error where a component needs it and it is not configured."""
        if self.data_bucket is None:
            raise ConfigurationError("RETRAIN_DATA_BUCKET is not set: which S3 bucket holds the data?")
        return self.data_bucket

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri is None:
            raise ConfigurationError("MLFLOW_TRACKING_URI (or RETRAIN_MLFLOW_TRACKING_URI) is not set")
        return self.mlflow_tracking_uri

    def now(self) -> datetime:
        """The as-of clock every component judges time against."""
        return self.as_of or datetime.now(UTC)

    def target_pct(self, trend: str) -> float:
        """The label threshold of ``trend`` (given as a positive fraction for both trends)."""
        return self.target_up_pct if trend == "uptrend" else self.target_down_pct

    @property
    def pool(self) -> tuple[PoolEntry, ...]:
        """The pool's (symbol, interval) entries, in the order given; bare symbols on ``interval``."""
        return tuple(parse_pool_entry(text, self.interval) for text in self.symbols)

    def symbols_on(self, interval: str) -> tuple[str, ...]:
        """The pool's symbols on ``interval`` bars (empty when it has none)."""
        return tuple(entry.symbol for entry in self.pool if entry.interval == interval)

    def for_interval(self, interval: Interval) -> Settings:
        """These settings as a model on ``interval`` bars sees them: ``interval`` set, and for hourly models
        the ``hourly_*`` values in place of the daily ones they stand for. Settings in days (schedule age,
        cooldown, the performance window, retry) are durations and apply unchanged."""
        update: dict[str, object] = {"interval": interval}
        if interval == "1h":
            update |= {
                "target_up_pct": self.hourly_target_up_pct,
                "target_down_pct": self.hourly_target_down_pct,
                "train_test_size": self.hourly_train_test_size,
                "drift_window_bars": self.hourly_drift_window_bars,
            }
        return self.model_copy(update=update)

    def model_names(self) -> list[str]:
        """Registered model names of the pool (:func:`registered_model_name`)."""
        return [registered_model_name(e.symbol, trend, e.interval) for e in self.pool for trend in TRENDS]


@dataclass(frozen=True)
class PoolEntry:
    """One entry of the pool: a symbol on one interval's bars (two models: uptrend and downtrend)."""

    symbol: str
    interval: Interval

    def __str__(self) -> str:
        return f"{self.symbol}:{self.interval}"


def pool_entry_text(text: str) -> str:
    """A pool entry as typed (`` xrp:1H``) in its canonical spelling (``XRP:1h``)."""
    symbol, sep, interval = text.strip().partition(":")
    return f"{symbol.strip().upper()}{sep}{interval.strip().lower()}"


def parse_pool_entry(text: str, default_interval: str) -> PoolEntry:
    """``SYMBOL`` (on ``default_interval``) or ``SYMBOL:INTERVAL``; a ValueError naming the entry otherwise."""
    symbol, sep, interval = text.partition(":")
    if not is_symbol(symbol):
        raise ValueError(f"pool entry {text!r}: {SYMBOL_RULE}")
    interval = interval if sep else default_interval
    if interval not in INTERVALS:
        raise ValueError(f"pool entry {text!r}: interval {interval!r} is not one of {', '.join(INTERVALS)}")
    return PoolEntry(symbol, interval)  # type: ignore[arg-type]


def model_stem(symbol: str, trend: str, interval: str = "1d") -> str:
    """What names one model in keys, experiments and records: ``{SYMBOL}_{trend}`` for a daily model (the
    original names, unchanged), ``{SYMBOL}_{interval}_{trend}`` otherwise (``XRP_1h_uptrend``). A symbol holds
    only A-Z and 0-9, so no daily name can equal an hourly one."""
    return f"{symbol}_{trend}" if interval == "1d" else f"{symbol}_{interval}_{trend}"


def model_label(symbol: str, trend: str, interval: str = "1d") -> str:
    """One model in words, for messages and summaries: ``BTC uptrend`` (daily), ``XRP 1h uptrend``."""
    return f"{symbol} {trend}" if interval == "1d" else f"{symbol} {interval} {trend}"


def registered_model_name(symbol: str, trend: str, interval: str = "1d") -> str:
    """``{SYMBOL}_{trend}_model`` for daily models (the original API's names), ``XRP_1h_uptrend_model`` for hourly."""
    return f"{model_stem(symbol, trend, interval)}_model"


def experiment_name(symbol: str, trend: str, interval: str = "1d") -> str:
    """The MLflow experiment holding every training attempt of one model."""
    return model_stem(symbol, trend, interval)


def environment_names(model: type[BaseSettings], field: str) -> str:
    """The environment variable(s) a settings field is read from, for error messages."""
    info = model.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return " or ".join(str(choice) for choice in alias.choices)
    if isinstance(alias, str):
        return alias
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def environment_variables(model: type[BaseSettings], field: str) -> tuple[str, ...]:
    """The environment variables a settings field is read from, in the order they are looked up."""
    return tuple(environment_names(model, field).split(" or "))


def configuration_error(model: type[BaseSettings], exc: ValidationError) -> ConfigurationError:
    """A readable error naming the environment variables at fault, not a pydantic traceback."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        where = environment_names(model, field) if field else "settings"
        problems.append(f"  {where}: {error['msg']} (got {error.get('input')!r})")
    return ConfigurationError("invalid configuration:\n" + "\n".join(problems))


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings from the environment; raise :class:`ConfigurationError` on bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise configuration_error(Settings, exc) from None


@functools.cache
def get_settings() -> Settings:
    """Settings of this process, validated on first use and cached (Lambda reuses them warm)."""
    return load_settings()
