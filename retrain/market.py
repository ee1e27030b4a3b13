"""The data commands: ``retrain ingest``, ``retrain validate`` and ``retrain features``.

They read and write the configured store (real AWS when ``RETRAIN_DATA_BUCKET`` is set, otherwise the
local stack) through the same ``common`` code the Lambda functions run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from common.aws.storage import S3ObjectStore
from common.core.errors import RetrainError
from common.core.settings import Settings
from common.data.bar_store import LoadedBars, OhlcvStore
from common.data.ingestion import SymbolIngestion
from common.data.validation import ValidationReport


def end_of_day(day: datetime) -> datetime:
    """``--end 2024-12-31`` means every bar of that day, whatever the interval: as-of is the next midnight."""
    return day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def load_bars(settings: Settings, symbol: str, interval: str, as_of: datetime) -> LoadedBars:
    return OhlcvStore(S3ObjectStore(settings.bucket)).load(
        symbol, interval, as_of=as_of, gap_policy=settings.gap_policy, stale_after_bars=settings.stale_after_bars
    )


@dataclass(frozen=True)
class FeatureTable:
    table: pd.DataFrame  # date + the 19 features
    report: ValidationReport
    source: str


def feature_table_for(settings: Settings, symbol: str, interval: str, as_of: datetime) -> FeatureTable:
    from common.data.features import feature_table

    loaded = load_bars(settings, symbol, interval, as_of)
    source = f"s3://{settings.bucket}/{loaded.key} (version {loaded.version_id or '-'})"
    return FeatureTable(feature_table(loaded.bars), loaded.report, source)


@dataclass(frozen=True)
class SeriesCheck:
    symbol: str
    report: ValidationReport | None
    error: RetrainError | None = None

    def to_dict(self) -> dict[str, object]:
        if self.report is not None:
            return self.report.to_dict()
        return {"symbol": self.symbol, "error": str(self.error), "error_type": type(self.error).__name__}


def validate_all(settings: Settings, symbols: tuple[str, ...], interval: str, as_of: datetime) -> list[SeriesCheck]:
    """One check per symbol; a symbol that cannot be read gives its error instead of a report."""
    checks = []
    for symbol in symbols:
        try:
            checks.append(SeriesCheck(symbol, load_bars(settings, symbol, interval, as_of).report))
        except RetrainError as exc:
            checks.append(SeriesCheck(symbol, None, exc))
    return checks


def render_reports(checks: list[SeriesCheck], interval: str) -> str:
    lines = [f"{'series':<10}{'bars':>7}{'refused':>9}  {'first bar':<17}{'last closed':<17}findings"]
    for check in checks:
        item = check.report
        if item is None:
            lines.append(f"{check.symbol + ' ' + interval:<10}{'-':>7}{'-':>9}  error: {check.error}")
            continue
        findings = ", ".join(f"{issue.kind.value}={issue.count} ({issue.severity.value})" for issue in item.issues)
        first = f"{item.first_bar:%Y-%m-%d %H:%M}" if item.first_bar else "-"
        last = f"{item.last_closed_bar:%Y-%m-%d %H:%M}" if item.last_closed_bar else "-"
        lines.append(
            f"{item.symbol + ' ' + item.interval:<10}{item.rows_out:>7}{item.rejected_rows:>9}  {first:<17}{last:<17}"
            f"{findings or 'clean'}"
        )
    for check in checks:  # then, per series with refused rows: counts per reason, each row and why
        if check.report is not None and check.report.rejected:
            item = check.report
            lines += ["", f"{item.symbol} {item.interval}: {item.rejected_rows} row(s) refused:"]
            lines += item.render_findings()
    return "\n".join(lines)


def describe_symbol(item: SymbolIngestion) -> str:
    if item.status == "failed":
        return f"{item.symbol}: failed ({item.error_type}: {item.error})"
    last = f", last bar {item.last_bar:%Y-%m-%d %H:%M}" if item.last_bar else ""
    text = f"{item.symbol}: {item.status}, {item.appended} bar(s) appended{last}"
    if item.append is not None and item.append.backfilled:
        text += f", {item.append.backfilled} of them older than the newest stored bar"
    if item.rejected_rows:
        text += f", {item.rejected_rows} row(s) refused (listed with the summary)"
    return text + (" (stale)" if item.stale else "")


def write_csv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)


def drift_between(reference_csv: Path, current_csv: Path, settings: Settings, *, png: Path | None = None) -> Any:
    """Drift report of one feature table against another, both as written by ``retrain features --csv``."""
    from common.core.errors import DataFormatError
    from common.data.features import FEATURE_NAMES
    from common.loop.drift import as_chart_input, check_drift
    from common.loop.drift_reference import build_reference

    frames = []
    for path in (reference_csv, current_csv):
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataFormatError(f"{path}: cannot read a CSV ({exc})") from None
        if "date" in frame.columns:
            frame = frame.set_index(pd.to_datetime(frame.pop("date"), utc=True, format="ISO8601"))
        frames.append(frame)
    reference_frame, current = frames
    missing = [name for name in FEATURE_NAMES if name not in reference_frame.columns]
    if missing:
        raise DataFormatError(f"{reference_csv}: missing feature columns {missing}")
    reference = build_reference(reference_frame[list(FEATURE_NAMES)], bins=settings.psi_bins)
    report = check_drift(reference, current, settings)
    if png is not None:
        from common.training.plots import psi_bars_png

        psi, thresholds = as_chart_input(report)
        png.write_bytes(
            psi_bars_png(psi, threshold=thresholds, title=f"PSI {current_csv.name} vs {reference_csv.name}")
        )
    return report
