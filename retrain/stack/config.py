"""Settings of the embedded local stack (ports, state folder), read from ``RETRAIN_LOCAL_*``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.core.settings import DEFAULT_SYMBOLS, Interval, configuration_error

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LocalStackConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETRAIN_LOCAL_", extra="ignore", frozen=True, populate_by_name=True)

    host: str = Field("127.0.0.1", description="Loopback address every local server binds to.")
    moto_port: int = Field(5100, ge=0, le=65535, description="moto server port (0: any free port).")
    mlflow_port: int = Field(5101, ge=0, le=65535, description="MLflow server port (0: any free port).")
    state_dir: Path = Field(PROJECT_ROOT / ".local", description="Folder for MLflow's DB, logs, snapshots.")
    region: str = Field("us-east-1", description="AWS region the local resources pretend to live in.")
    stage: str = Field("local", description="Value of the template's Stage parameter.")
    template_path: Path = Field(PROJECT_ROOT / "template.yaml", description="SAM template to provision from.")
    sample_data_dir: Path = Field(PROJECT_ROOT / "sample_data" / "ohlcv", description="Sample OHLCV to upload.")
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_SYMBOLS,
        validation_alias="RETRAIN_SYMBOLS",
        description="Symbols whose sample data is uploaded (same variable as the pool's).",
    )
    interval: Interval = Field(
        "1d",
        validation_alias="RETRAIN_INTERVAL",
        description="Interval of the pool's entries that name none (same variable as the pool's).",
    )
    sample_data_until: datetime | None = Field(
        None, description="Seed only the bars closed by then (a replay ingests the rest day by day)."
    )
    with_mlflow: bool = Field(True, description="Start the MLflow tracking server.")
    mlflow_start_timeout: float = Field(90.0, gt=0, description="Seconds to wait for MLflow to answer.")

    def to_environment(self) -> dict[str, str]:
        """This configuration as environment variables, for a daemon that reads it back."""
        env = {
            f"RETRAIN_LOCAL_{name.upper()}": str(value)
            for name, value in self.model_dump().items()
            if name not in {"symbols", "interval"} and value is not None
        }
        env["RETRAIN_SYMBOLS"] = ",".join(self.symbols)
        env["RETRAIN_INTERVAL"] = self.interval
        return env

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        if not (host.startswith("127.") or host in {"localhost", "::1"}):
            raise ValueError(f"the local stack binds to loopback only, got {host!r}")
        return host

    @field_validator("symbols", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value


def load_local_config(**overrides: object) -> LocalStackConfig:
    """The local stack's configuration from the environment, with a readable error on bad values."""
    try:
        return LocalStackConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise configuration_error(LocalStackConfig, exc) from None
