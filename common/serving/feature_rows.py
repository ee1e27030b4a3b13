"""What a champion is asked at serving time: the features of the last closed bar, from the stored bars.

The prediction API (``/prediction``) and the batch predictions both go through :func:`latest_features`, so
the row a model is asked about is the row the log records. Features are computed on the whole stored
history, as training computed them (the OBV/A-D percent changes depend on the first bar); the still-open
bar is never used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd

from common.core.errors import DataNotFoundError
from common.core.settings import GapPolicy
from common.data.bar_store import OhlcvStore
from common.data.features import FEATURE_NAMES, compute_features


class FeaturesUnavailableError(DataNotFoundError):
    """The last closed bar has no complete feature row (too little history, or a NaN feature)."""


@dataclass(frozen=True)
class FeatureRow:
    """The 19 features of one symbol's last closed bar at ``as_of``."""

    symbol: str
    interval: str
    bar: datetime  # open time of the bar the features were computed from
    values: pd.DataFrame  # one row, columns FEATURE_NAMES, indexed by ``bar``
    bars_version: str | None  # S3 version of the bars object they came from

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values.columns)

    @cached_property
    def array(self) -> np.ndarray:
        """The row as a (1, 19) float array in FEATURE_NAMES order, made once per cached row."""
        return self.values.to_numpy(dtype="float64")

    def array_for(self, names: tuple[str, ...]) -> np.ndarray:
        """The row's values in ``names`` order (the cached array when that is FEATURE_NAMES' order)."""
        if names == self.names:
            return self.array
        return self.values[list(names)].to_numpy(dtype="float64")

    def as_dict(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.values.iloc[0].items()}


def latest_features(
    store: OhlcvStore,
    symbol: str,
    interval: str,
    *,
    as_of: datetime,
    gap_policy: GapPolicy = "report",
) -> FeatureRow:
    """Features of ``symbol``'s last closed bar at ``as_of``. Raises :class:`DataNotFoundError` without
    stored bars and :class:`FeaturesUnavailableError` when that bar's features are incomplete."""
    loaded = store.load(symbol, interval, as_of=as_of, gap_policy=gap_policy)
    features = compute_features(loaded.bars)
    row = features.iloc[[-1]][list(FEATURE_NAMES)]
    missing = [name for name in FEATURE_NAMES if pd.isna(row[name].iloc[0])]
    bar = row.index[0].to_pydatetime()
    if missing:
        raise FeaturesUnavailableError(
            f"{symbol} {interval}: the features of bar {bar:%Y-%m-%d %H:%M} are incomplete (NaN: {missing}); "
            f"{len(loaded.bars)} closed bars stored"
        )
    return FeatureRow(symbol, interval, bar, row, loaded.version_id)


class FeatureCache:
    """The latest feature row per (symbol, interval), recomputed at most every ``refresh_seconds`` (the
    stored bars change once per bar; a request never reads S3 while the cached row is fresh). When a
    refresh fails the previous row keeps serving (its ``bar`` says how old it is); with none, it raises."""

    def __init__(
        self,
        load: Callable[[str, str], FeatureRow],
        *,
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._rows: dict[tuple[str, str], tuple[float, FeatureRow]] = {}
        self._lock = threading.Lock()

    def fresh(self, symbol: str, interval: str) -> FeatureRow | None:
        """The cached row while it is fresh (never blocks); None when :meth:`get` would have to load."""
        cached = self._rows.get((symbol, interval))
        if cached is not None and self._clock() - cached[0] < self._refresh_seconds:
            return cached[1]
        return None

    def get(self, symbol: str, interval: str) -> FeatureRow:
        row = self.fresh(symbol, interval)
        if row is not None:
            return row
        key = (symbol, interval)
        with self._lock:  # one loader; concurrent callers wait for its row
            row = self.fresh(symbol, interval)
            if row is not None:
                return row
            cached = self._rows.get(key)
            try:
                row = self._load(symbol, interval)
            except Exception:  # S3 or the bars failed: the last good row keeps serving, tried again later
                if cached is None:
                    raise
                self._rows[key] = (self._clock(), cached[1])
                return cached[1]
            self._rows[key] = (self._clock(), row)
            return row

    def rows(self) -> dict[tuple[str, str], FeatureRow]:
        return {key: row for key, (_, row) in list(self._rows.items())}
