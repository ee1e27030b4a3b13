"""common.core.settings: SPEC defaults, environment parsing and validation errors that name the variable."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.core.errors import ConfigurationError
from common.core.settings import DEFAULT_SYMBOLS, Settings, get_settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch):
    """No RETRAIN_* / MLFLOW_TRACKING_URI from the caller's shell leaks into a test, and no cached settings."""
    for name in list(os.environ):
        if name.upper().startswith("RETRAIN_") or name.upper() == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


# --- defaults -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("prediction_window", 10),
        ("target_up_pct", 0.05),
        ("target_down_pct", 0.05),
        ("perf_accuracy_threshold", 0.52),
        ("perf_window_days", 14),
        ("perf_min_predictions", 100),
        ("psi_bins", 10),
        ("psi_feature_threshold", 0.2),
        ("psi_max_threshold", 0.25),
        ("psi_max_drifted_features", 3),
        ("max_model_age_days", 7),
        ("gate_min_positive_accuracy", 0.5),
        ("gate_min_negative_accuracy", 0.5),
        ("gate_min_overall_score", 0.6),
        ("interval", "1d"),
        ("notify_channels", ("outbox",)),
        ("data_bucket", None),
        ("mlflow_tracking_uri", None),
        ("as_of", None),
    ],
)
def test_defaults_follow_spec(field: str, expected: object) -> None:
    assert getattr(load_settings(), field) == expected


def test_default_symbols_are_the_sample_data_symbols() -> None:
    sample_symbols = sorted(p.stem for p in (REPO_ROOT / "sample_data" / "ohlcv" / "1d").glob("*.csv"))
    assert sample_symbols, "no sample data found"
    assert sorted(DEFAULT_SYMBOLS) == sample_symbols
    assert load_settings().symbols == DEFAULT_SYMBOLS


def test_model_names_cover_every_symbol_and_trend(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_SYMBOLS", "BTC,ETH")
    assert load_settings().model_names() == [
        "BTC_uptrend_model",
        "BTC_downtrend_model",
        "ETH_uptrend_model",
        "ETH_downtrend_model",
    ]


# --- environment parsing ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BTC, ETH", ("BTC", "ETH")),
        ("BTC,ETH,SOL", ("BTC", "ETH", "SOL")),
        (" SOL ", ("SOL",)),
        ("BTC,,ETH,", ("BTC", "ETH")),
    ],
)
def test_symbols_from_comma_separated_env(clean_env: pytest.MonkeyPatch, raw: str, expected: tuple[str, ...]) -> None:
    clean_env.setenv("RETRAIN_SYMBOLS", raw)
    assert load_settings().symbols == expected


def test_scalar_fields_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_PREDICTION_WINDOW", "24")
    clean_env.setenv("RETRAIN_INTERVAL", "1h")
    clean_env.setenv("RETRAIN_TARGET_UP_PCT", "0.03")
    clean_env.setenv("RETRAIN_DATA_BUCKET", "retrain-local-123456789012-us-east-1")
    settings = load_settings()
    assert settings.prediction_window == 24
    assert settings.interval == "1h"
    assert settings.target_up_pct == 0.03
    assert settings.target_down_pct == 0.05
    assert settings.bucket == "retrain-local-123456789012-us-east-1"


def test_notify_channels_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_NOTIFY_CHANNELS", "outbox, telegram")
    clean_env.setenv("RETRAIN_TELEGRAM_SECRET_NAME", "retrain/telegram")
    clean_env.setenv("RETRAIN_TELEGRAM_CHAT_ID", "-100123")
    settings = load_settings()
    assert settings.notify_channels == ("outbox", "telegram")
    assert settings.telegram_chat_id == "-100123"


def test_telegram_channel_needs_the_token_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_NOTIFY_CHANNELS", "outbox,telegram")
    clean_env.setenv("RETRAIN_TELEGRAM_CHAT_ID", "-100123")
    with pytest.raises(ConfigurationError, match="RETRAIN_TELEGRAM_SECRET_NAME"):
        load_settings()


def test_telegram_chat_id_may_come_from_the_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_NOTIFY_CHANNELS", "outbox,telegram")
    clean_env.setenv("RETRAIN_TELEGRAM_SECRET_NAME", "retrain/telegram")
    assert load_settings().telegram_chat_id is None


def test_unknown_notify_channel_is_rejected(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_NOTIFY_CHANNELS", "email")
    with pytest.raises(ConfigurationError, match="RETRAIN_NOTIFY_CHANNELS"):
        load_settings()


@pytest.mark.parametrize("alias", ["MLFLOW_TRACKING_URI", "RETRAIN_MLFLOW_TRACKING_URI"])
def test_tracking_uri_env_names(clean_env: pytest.MonkeyPatch, alias: str) -> None:
    clean_env.setenv(alias, "http://127.0.0.1:5000")
    settings = load_settings()
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.tracking_uri == "http://127.0.0.1:5000"


def test_tracking_uri_unset_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="MLFLOW_TRACKING_URI"):
        _ = load_settings().tracking_uri


# --- validation errors name the variable ----------------------------------------------------------
@pytest.mark.parametrize(
    ("env_name", "value"),
    [
        ("RETRAIN_SYMBOLS", "btc,ETH"),
        ("RETRAIN_SYMBOLS", "BTC,ETH,BTC"),
        ("RETRAIN_SYMBOLS", "BTC-USD"),
        ("RETRAIN_SYMBOLS", " , "),
        ("RETRAIN_PREDICTION_WINDOW", "0"),
        ("RETRAIN_PREDICTION_WINDOW", "-1"),
        ("RETRAIN_PREDICTION_WINDOW", "ten"),
        ("RETRAIN_INTERVAL", "5m"),
        ("RETRAIN_TARGET_DOWN_PCT", "0"),
        ("RETRAIN_PSI_BINS", "1"),
        ("RETRAIN_PERF_ACCURACY_THRESHOLD", "1.5"),
        ("RETRAIN_DATA_BUCKET", "Bad_Bucket"),
        ("RETRAIN_DATA_BUCKET", "ab"),
        ("RETRAIN_DATA_BUCKET", "-starts-with-dash"),
        ("RETRAIN_DATA_BUCKET", "a" * 64),
        ("RETRAIN_AS_OF", "yesterday"),
    ],
)
def test_bad_value_raises_configuration_error_naming_the_variable(
    clean_env: pytest.MonkeyPatch, env_name: str, value: str
) -> None:
    clean_env.setenv(env_name, value)
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    assert env_name in str(excinfo.value)


def test_only_the_bad_variable_is_reported(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_PREDICTION_WINDOW", "0")
    clean_env.setenv("RETRAIN_SYMBOLS", "BTC")
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert "RETRAIN_PREDICTION_WINDOW" in message
    assert "RETRAIN_SYMBOLS" not in message


@pytest.mark.parametrize("uri", ["ftp://x", "not a uri", "http://", "https://", "s3://bucket/mlruns"])
@pytest.mark.parametrize("alias", ["MLFLOW_TRACKING_URI", "RETRAIN_MLFLOW_TRACKING_URI"])
def test_bad_tracking_uri_is_rejected(clean_env: pytest.MonkeyPatch, alias: str, uri: str) -> None:
    clean_env.setenv(alias, uri)
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    assert "MLFLOW_TRACKING_URI" in str(excinfo.value)


def test_bad_tracking_uri_error_names_an_existing_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MLFLOW_TRACKING_URI", "ftp://x")
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    assert "RETRAIN_RETRAIN_" not in str(excinfo.value)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.com",
        "sqlite:///x.db",
        "file:///tmp/mlruns",
        "databricks://my-profile",
        "postgresql://user:pw@db.example.com:5432/mlflow",
        "databricks",
        "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/my-server",
    ],
)
def test_valid_tracking_uri_is_accepted(clean_env: pytest.MonkeyPatch, uri: str) -> None:
    clean_env.setenv("MLFLOW_TRACKING_URI", uri)
    assert load_settings().mlflow_tracking_uri == uri


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sagemaker:us-east-1:12345:mlflow-tracking-server/my-server",  # short account id
        "arn:aws:s3:us-east-1:123456789012:mlflow-tracking-server/my-server",  # wrong service
        "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/my-server",
    ],
)
def test_malformed_sagemaker_arn_is_rejected(arn: str) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(mlflow_tracking_uri=arn)


# --- clock and required values ------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    ["2025-02-20T00:00:00", "2025-02-20T00:00:00Z", "2025-02-20T02:00:00+02:00", "2025-02-19T19:00:00-05:00"],
)
def test_as_of_is_normalised_to_utc(clean_env: pytest.MonkeyPatch, raw: str) -> None:
    clean_env.setenv("RETRAIN_AS_OF", raw)
    settings = load_settings()
    assert settings.as_of == datetime(2025, 2, 20, tzinfo=UTC)
    assert settings.as_of.utcoffset().total_seconds() == 0
    assert settings.now() == datetime(2025, 2, 20, tzinfo=UTC)


def test_now_without_as_of_is_the_aware_wall_clock() -> None:
    before = datetime.now(UTC)
    now = load_settings().now()
    assert now.tzinfo is not None
    assert before <= now <= datetime.now(UTC)


def test_bucket_unset_is_a_configuration_error() -> None:
    settings = load_settings()
    with pytest.raises(ConfigurationError, match="RETRAIN_DATA_BUCKET"):
        _ = settings.bucket


def test_overrides_win_over_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_SYMBOLS", "BTC")
    assert load_settings(symbols="ETH,SOL").symbols == ("ETH", "SOL")


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance ValidationError
        settings.prediction_window = 3  # type: ignore[misc]
    assert isinstance(settings, Settings)


# --- caching ------------------------------------------------------------------------------------
def test_get_settings_is_cached_until_cache_clear(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_PREDICTION_WINDOW", "12")
    first = get_settings()
    clean_env.setenv("RETRAIN_PREDICTION_WINDOW", "20")
    assert get_settings() is first
    assert get_settings().prediction_window == 12
    get_settings.cache_clear()
    assert get_settings().prediction_window == 20


def test_get_settings_raises_configuration_error_on_bad_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RETRAIN_PREDICTION_WINDOW", "0")
    with pytest.raises(ConfigurationError, match="RETRAIN_PREDICTION_WINDOW"):
        get_settings()
