"""The sample OHLCV shipped in ``sample_data/ohlcv/{interval}/{SYMBOL}.csv``, and its upload to S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import ConfigurationError
from common.keys import ohlcv_key


def available(sample_dir: Path) -> dict[str, list[str]]:
    """Intervals available per symbol."""
    found: dict[str, list[str]] = {}
    for path in sorted(sample_dir.glob("*/*.csv")):
        found.setdefault(path.stem, []).append(path.parent.name)
    return found


def check_symbols(sample_dir: Path, symbols: tuple[str, ...]) -> tuple[str, ...]:
    if not sample_dir.is_dir():
        raise ConfigurationError(f"sample data folder {sample_dir} does not exist")
    known = available(sample_dir)
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise ConfigurationError(
            f"unknown symbol(s) {unknown}: no sample data for them in {sample_dir}; "
            f"available: {','.join(sorted(known))}"
        )
    return symbols


def upload(s3: Any, bucket: str, sample_dir: Path, symbols: tuple[str, ...]) -> int:
    """Seed the bucket with each symbol's CSVs. An existing object is never overwritten: it may hold
    history appended since (ingestion), which the sample file does not have."""
    uploaded = 0
    for symbol in symbols:
        for path in sorted(sample_dir.glob(f"*/{symbol}.csv")):
            key = ohlcv_key(symbol, path.parent.name)
            try:
                s3.head_object(Bucket=bucket, Key=key)
                continue
            except s3.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] not in {"404", "NoSuchKey", "NotFound"}:
                    raise
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="text/csv")
            uploaded += 1
    return uploaded
