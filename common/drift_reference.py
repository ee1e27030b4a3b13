"""The training data's drift reference: per-feature decile bins and shares, stored with each model version.

The trigger checker (SPEC.md, "Retraining triggers" item 2) compares live feature values with this
reference by PSI. It fixes the weaknesses listed there that come from the binning itself:

- Out-of-range values: the outer bins are open-ended, (-inf, e1] and (ek, +inf), so nothing falls
  outside the bins (``np.histogram`` drops values beyond its first/last edge).
- NaN: edges and shares are computed on finite values only; NaN and ±inf are counted in
  ``missing_rate`` instead (``np.quantile`` with one NaN returns NaN edges and hides all drift).
- Ties: duplicate quantiles are collapsed, and no bin of the reference is empty (see below), so PSI never
  divides by a zero expected share because of the binning.

Bin convention (one place, used by :func:`build_reference` and :func:`bin_shares`): bins are closed on
the right, (-inf, e1], (e1, e2], ..., (ek, +inf); a value equal to an edge goes to the lower bin.

Edges are the finite training values' quantiles at 1/bins, ..., (bins-1)/bins by the inverted-CDF
definition (each edge is an actual training value), deduplicated, minus any edge equal to the maximum.
With right-closed bins this guarantees every reference bin holds at least one training value: bin i
holds its own upper edge, and the last bin (ek, +inf) is non-empty because ek < max. A constant feature
gets no interior edge and one bin with share 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
DEFAULT_BINS = 10


@dataclass(frozen=True)
class FeatureReference:
    """One feature's training distribution: interior edges, bin shares, and how much was missing.

    ``count == 0`` (an all-missing feature) has no distribution: ``shares`` is ``(0.0,)`` and PSI must not
    be computed on it; its ``missing_rate`` of 1.0 carries the information.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    missing_rate: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; Python's float repr round-trips exactly."""
        return {
            "edges": list(self.edges),
            "shares": list(self.shares),
            "missing_rate": self.missing_rate,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureReference:
        """Inverse of :meth:`to_dict`; raises ValueError on a malformed entry."""
        try:
            edges = tuple(float(e) for e in data["edges"])
            shares = tuple(float(s) for s in data["shares"])
            missing_rate, count = float(data["missing_rate"]), int(data["count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed feature reference: {exc!r}") from None
        if len(shares) != len(edges) + 1:
            raise ValueError(f"a feature reference needs len(edges) + 1 shares, got {len(edges)} and {len(shares)}")
        if any(b <= a for a, b in pairwise(edges)):
            raise ValueError("feature reference edges must be strictly increasing")
        return cls(edges=edges, shares=shares, missing_rate=missing_rate, count=count)


@dataclass(frozen=True)
class DriftReference:
    """Drift reference of one training set: a :class:`FeatureReference` per feature, in column order."""

    features: dict[str, FeatureReference]
    bins: int
    rows: int
    first_bar: str | None
    last_bar: str | None
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, exact through ``json.dumps``/``json.loads`` (floats included)."""
        return {
            "version": self.version,
            "bins": self.bins,
            "rows": self.rows,
            "first_bar": self.first_bar,
            "last_bar": self.last_bar,
            "features": {name: ref.to_dict() for name, ref in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReference:
        """Inverse of :meth:`to_dict`; refuses an unknown format version rather than misreading it."""
        version = data.get("version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported drift reference version {version!r} (expected {FORMAT_VERSION})")
        try:
            features = {str(name): FeatureReference.from_dict(entry) for name, entry in data["features"].items()}
            return cls(
                features=features,
                bins=int(data["bins"]),
                rows=int(data["rows"]),
                first_bar=data.get("first_bar"),
                last_bar=data.get("last_bar"),
                version=FORMAT_VERSION,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed drift reference: {exc!r}") from None

    def to_json(self) -> str:
        """Compact JSON text (an MLflow artifact or tag)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> DriftReference:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def build_reference(
    features: pd.DataFrame,
    *,
    bins: int = DEFAULT_BINS,
    first_bar: datetime | str | None = None,
    last_bar: datetime | str | None = None,
) -> DriftReference:
    """The drift reference of a training feature table (one column per feature).

    ``first_bar``/``last_bar`` default to the first and last index labels when the index is a
    DatetimeIndex (the training data's range), else None.
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError("features must be a DataFrame")
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if first_bar is None and last_bar is None and isinstance(features.index, pd.DatetimeIndex) and len(features):
        first_bar, last_bar = features.index.min(), features.index.max()
    references: dict[str, FeatureReference] = {}
    for name in features.columns:
        try:
            values = features[name].to_numpy(dtype="float64")
        except (TypeError, ValueError):
            raise ValueError(f"feature {name!r} is not numeric") from None
        references[str(name)] = feature_reference(values, bins=bins)
    return DriftReference(
        features=references,
        bins=bins,
        rows=len(features),
        first_bar=_iso(first_bar),
        last_bar=_iso(last_bar),
    )


def feature_reference(values: np.ndarray, *, bins: int = DEFAULT_BINS) -> FeatureReference:
    """Reference of one feature's training values (module docstring: edges and bin convention)."""
    values = np.asarray(values, dtype="float64").ravel()
    finite = values[np.isfinite(values)]
    missing_rate = float((len(values) - len(finite)) / len(values)) if len(values) else 0.0
    if len(finite) == 0:
        return FeatureReference(edges=(), shares=(0.0,), missing_rate=missing_rate, count=0)
    quantiles = np.quantile(finite, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = np.unique(quantiles)
    edges = edges[edges < finite.max()]
    shares = bin_shares(finite, edges)
    return FeatureReference(
        edges=tuple(float(e) for e in edges),
        shares=tuple(float(s) for s in shares),
        missing_rate=missing_rate,
        count=len(finite),
    )


def bin_shares(values: np.ndarray, edges: tuple[float, ...] | list[float] | np.ndarray) -> np.ndarray:
    """Share of the finite ``values`` in each of the ``len(edges) + 1`` right-closed, open-ended bins.

    NaN and ±inf are excluded (count them separately as missing). With no finite value every share is 0.
    """
    values = np.asarray(values, dtype="float64").ravel()
    finite = values[np.isfinite(values)]
    edges_array = np.asarray(edges, dtype="float64")
    if len(finite) == 0:
        return np.zeros(len(edges_array) + 1)
    # side="left": the first edge >= v, so a value equal to an edge lands in the bin that edge closes.
    index = np.searchsorted(edges_array, finite, side="left")
    return np.bincount(index, minlength=len(edges_array) + 1) / len(finite)


def _iso(moment: datetime | str | None) -> str | None:
    """ISO 8601 text of a bar time (strings are kept as given)."""
    if moment is None or isinstance(moment, str):
        return moment
    if pd.isna(moment):  # NaT
        return None
    return moment.isoformat()
