"""The training data's drift reference: per-feature decile bins and shares, stored with each model version.

The drift trigger compares live feature values with this reference by PSI. The naive PSI (deciles of the
training series, ``np.histogram`` of the live window) has weaknesses that come from the binning itself; this
module fixes them:

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

Null profile (optional, for the trigger's adaptive threshold in :mod:`common.loop.drift`): PSI's spread under
no drift is far larger than the i.i.d. formula (bins-1)*(1/N+1/M) says, because the features are strongly
autocorrelated (a 90-bar window of MACD sits in two or three deciles). So :func:`build_reference` also
records, per feature, the mean and variance of the (smoothed) PSI of every ``w``-bar window of the training
series against the training shares, for window lengths ``w`` in :data:`NULL_PROFILE_WINDOWS` up to half the
series. That is the training period's own window-to-window variability, measured once where the data is.
It needs the rows in time order. References stored before the profile existed simply lack it (the field
defaults to empty and the drift check falls back to the i.i.d. threshold).

Residual model (optional, :class:`ResidualModel`): the part of each feature its companions do not explain
linearly, ``z_f - E[z_f | z_others]`` on standardised features, with its own decile reference and null
profile. The features move together with the market (a trend shifts the SMA differences, MACD, PPO and
TRIX at once), so a single feature that breaks away from the others (a changed vendor field, a pipeline
bug, a shift of that feature alone) stands out in its residual long before its marginal distribution leaves
the range persistent features wander through anyway. Measured on real data by bench/drift_simulation.py.
All residuals come from one matrix product: with Theta the inverse correlation matrix of the basis,
residual_f = (Z Theta)_f / Theta_ff (the OLS residual of z_f on the others). Features that are exact linear
combinations of others (MACD_Hist = MACD - MACD_Signal) are left out of the basis (a rank-revealing QR),
otherwise their residual is rounding noise. The residual references are built from cross-fitted residuals
(:data:`RESIDUAL_FOLDS` contiguous folds, each predicted by a fit on the others), so their edges and null
profile describe out-of-sample residuals, which is what live windows produce.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
DEFAULT_BINS = 10

#: Added to every bin count before PSI compares shares (Jeffreys / Krichevsky-Trofimov estimate): it keeps
#: ln(q/p) finite for a bin the current window leaves empty, its weight fades like 1/M as windows grow, and
#: unlike an epsilon floor (1e-4) it does not make one empty bin worth p*ln(p/1e-4) ~ 0.7 in a short window.
PSI_SMOOTHING = 0.5
#: Window lengths (bars) of the null profile; those longer than half the training series are skipped.
NULL_PROFILE_WINDOWS: tuple[int, ...] = (
    5, 7, 10, 14, 20, 30, 45, 60, 90, 120, 180, 270, 365, 540, 730, 1095, 1460, 2190, 2920, 4380, 6570, 8760,
)  # fmt: skip
# Window starts per profiled length: a stride keeps long (hourly) series cheap; the mean stays unbiased.
_PROFILE_MAX_STARTS = 256
#: Contiguous folds of the cross-fitted residuals behind the residual references (module docstring).
RESIDUAL_FOLDS = 5
# A basis feature must keep more than this share of its spread after the others explain what they can
# (|R_kk| of the pivoted QR over sqrt(n)): below it (R^2 > 1 - 1e-8) it is an exact linear combination.
_COLLINEAR_TOLERANCE = 1e-4
# Features missing in more training rows than this stay out of the basis (they would cost complete rows).
_RESIDUAL_MAX_MISSING = 0.05
# Complete training rows needed per basis feature (and per fold) to fit the residual model at all.
_RESIDUAL_ROWS_PER_FEATURE = 10
# Added to the correlation matrix's diagonal before inverting: numerical safety only, far below any signal.
_RESIDUAL_RIDGE = 1e-9


@dataclass(frozen=True)
class FeatureReference:
    """One feature's training distribution: interior edges, bin shares, and how much was missing.

    ``count == 0`` (an all-missing feature) has no distribution: ``shares`` is ``(0.0,)`` and PSI must not
    be computed on it; its ``missing_rate`` of 1.0 carries the information.

    ``null_windows``/``null_psi_mean``/``null_psi_var``: the optional null profile (module docstring), empty
    when the reference predates it or the feature has one bin or too few values.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    missing_rate: float
    count: int
    null_windows: tuple[int, ...] = ()
    null_psi_mean: tuple[float, ...] = ()
    null_psi_var: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; Python's float repr round-trips exactly. The profile key only when there is one."""
        data: dict[str, Any] = {
            "edges": list(self.edges),
            "shares": list(self.shares),
            "missing_rate": self.missing_rate,
            "count": self.count,
        }
        if self.null_windows:
            data["null_profile"] = {
                "windows": list(self.null_windows),
                "psi_mean": list(self.null_psi_mean),
                "psi_var": list(self.null_psi_var),
            }
        return data

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
        windows, means, variances = _profile_from_dict(data.get("null_profile"))
        return cls(
            edges=edges,
            shares=shares,
            missing_rate=missing_rate,
            count=count,
            null_windows=windows,
            null_psi_mean=means,
            null_psi_var=variances,
        )


@dataclass(frozen=True)
class DriftReference:
    """Drift reference of one training set: a :class:`FeatureReference` per feature, in column order."""

    features: dict[str, FeatureReference]
    bins: int
    rows: int
    first_bar: str | None
    last_bar: str | None
    version: int = FORMAT_VERSION
    residuals: ResidualModel | None = None  # None: marginal PSI only (an older reference, or too few rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, exact through ``json.dumps``/``json.loads`` (floats included)."""
        data: dict[str, Any] = {
            "version": self.version,
            "bins": self.bins,
            "rows": self.rows,
            "first_bar": self.first_bar,
            "last_bar": self.last_bar,
            "features": {name: ref.to_dict() for name, ref in self.features.items()},
        }
        if self.residuals is not None:
            data["residuals"] = self.residuals.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReference:
        """Inverse of :meth:`to_dict`; refuses an unknown format version rather than misreading it."""
        version = data.get("version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported drift reference version {version!r} (expected {FORMAT_VERSION})")
        try:
            features = {str(name): FeatureReference.from_dict(entry) for name, entry in data["features"].items()}
            residuals = data.get("residuals")
            model = None if residuals is None else ResidualModel.from_dict(residuals)
            if model is not None and not set(model.basis) <= set(features):
                raise ValueError(f"residual basis {list(model.basis)} names features the reference does not have")
            return cls(
                features=features,
                bins=int(data["bins"]),
                rows=int(data["rows"]),
                first_bar=data.get("first_bar"),
                last_bar=data.get("last_bar"),
                version=FORMAT_VERSION,
                residuals=model,
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


@dataclass(frozen=True)
class ResidualModel:
    """Each basis feature's residual on the other basis features (module docstring, "Residual model").

    ``residuals(x) = ((x - mean) / scale) @ weights``, one column per basis feature; ``features`` holds
    the residual's :class:`FeatureReference` (edges, shares, null profile of cross-fitted residuals) under
    the feature's own name.
    """

    basis: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[tuple[float, ...], ...]  # basis x basis, row-major
    features: dict[str, FeatureReference]

    def residuals(self, columns: dict[str, np.ndarray] | pd.DataFrame) -> np.ndarray:
        """Basis x rows residuals of ``columns`` (the basis features by name; one contiguous row per
        feature, ready to bin); NaN on a row with a missing or infinite basis value."""
        values = np.vstack([np.asarray(columns[name], dtype="float64") for name in self.basis])
        return _residuals(values.T, np.asarray(self.mean), np.asarray(self.scale), np.asarray(self.weights)).T

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": list(self.basis),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": [list(row) for row in self.weights],
            "features": {name: ref.to_dict() for name, ref in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> ResidualModel:
        """Inverse of :meth:`to_dict`; raises ValueError on a malformed or inconsistent model."""
        try:
            basis = tuple(str(name) for name in data["basis"])
            mean = tuple(float(v) for v in data["mean"])
            scale = tuple(float(v) for v in data["scale"])
            weights = tuple(tuple(float(v) for v in row) for row in data["weights"])
            features = {str(name): FeatureReference.from_dict(entry) for name, entry in data["features"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed residual model: {exc!r}") from None
        size = len(basis)
        if len(set(basis)) != size or len(mean) != size or len(scale) != size or len(weights) != size:
            raise ValueError("a residual model needs one mean, scale and weight row per basis feature")
        if any(len(row) != size for row in weights) or set(features) != set(basis):
            raise ValueError("residual weights must be square and every basis feature needs a residual reference")
        if not all(math.isfinite(v) for v in (*mean, *scale, *(w for row in weights for w in row))):
            raise ValueError("residual model numbers must be finite")
        if any(v <= 0 for v in scale):
            raise ValueError("residual model scales must be > 0")
        return cls(basis=basis, mean=mean, scale=scale, weights=weights, features=features)


def fit_residual_model(
    features: pd.DataFrame,
    references: dict[str, FeatureReference],
    *,
    bins: int = DEFAULT_BINS,
    null_profile: bool = True,
    folds: int = RESIDUAL_FOLDS,
) -> ResidualModel | None:
    """The residual model of a training feature table in time order (module docstring), or None when it
    cannot be fitted soundly: fewer than 3 usable features or too few complete rows for the folds."""
    usable = [
        str(name)
        for name in features.columns
        if references[str(name)].missing_rate <= _RESIDUAL_MAX_MISSING and len(references[str(name)].edges) >= 1
    ]
    if len(usable) < 3:
        return None
    values = features[usable].to_numpy(dtype="float64")
    values = values[np.isfinite(values).all(axis=1)]
    if len(values) < folds * _RESIDUAL_ROWS_PER_FEATURE * len(usable):
        return None
    basis = [usable[i] for i in _independent_columns(values)]
    values = values[:, [usable.index(name) for name in basis]]
    if len(basis) < 3:
        return None
    # Cross-fitted residuals: each contiguous fold predicted by a model fitted on the other folds.
    cross_fitted = np.empty_like(values)
    for fold in np.array_split(np.arange(len(values)), folds):
        others = np.ones(len(values), dtype=bool)
        others[fold] = False
        cross_fitted[fold] = _residuals(values[fold], *_fit_residuals(values[others]))
    mean, scale, weights = _fit_residuals(values)
    return ResidualModel(
        basis=tuple(basis),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        weights=tuple(tuple(float(v) for v in row) for row in weights),
        features={
            name: feature_reference(cross_fitted[:, j], bins=bins, null_profile=null_profile)
            for j, name in enumerate(basis)
        },
    )


def _independent_columns(values: np.ndarray) -> list[int]:
    """Indices (ascending) of a maximal set of standardised columns none of which is an exact linear
    combination of the others: the pivots of a rank-revealing QR above :data:`_COLLINEAR_TOLERANCE`."""
    from scipy.linalg import qr

    scale = values.std(axis=0)
    keep = np.flatnonzero(scale > 0)
    z = (values[:, keep] - values[:, keep].mean(axis=0)) / scale[keep]
    _, r, pivots = qr(z, mode="economic", pivoting=True)
    explained = np.abs(np.diag(r)) / math.sqrt(len(z))
    return sorted(int(keep[p]) for p, share in zip(pivots, explained, strict=True) if share > _COLLINEAR_TOLERANCE)


def _fit_residuals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, scale, weights) of the OLS residuals of each standardised column on the others."""
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (values - mean) / scale
    correlation = z.T @ z / len(z) + _RESIDUAL_RIDGE * np.eye(z.shape[1])
    precision = np.linalg.inv(correlation)
    return mean, scale, precision / np.diag(precision)  # column f scaled by 1 / Theta_ff


def _residuals(values: np.ndarray, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows x basis residuals of rows x basis ``values`` (any memory order: the bench's 1M x 50 takes one
    BLAS product, the standardisation folded into the weights instead of a pass over the rows)."""
    scaled = weights / scale[:, None]
    out = (scaled.T @ values.T).T  # keeps the memory order of ``values`` (rows of .T are contiguous columns)
    out -= (mean / scale) @ weights
    # A row's sum is non-finite when any value is NaN or infinite (or it overflows: missing too).
    out[~np.isfinite(values.sum(axis=1))] = np.nan
    return out


def build_reference(
    features: pd.DataFrame,
    *,
    bins: int = DEFAULT_BINS,
    first_bar: datetime | str | None = None,
    last_bar: datetime | str | None = None,
    null_profile: bool = True,
    residuals: bool = True,
) -> DriftReference:
    """The drift reference of a training feature table (one column per feature, rows in time order).

    ``first_bar``/``last_bar`` default to the first and last index labels when the index is a
    DatetimeIndex (the training data's range), else None. A DatetimeIndex out of order is sorted for the
    null profile (``null_profile=False`` skips it) and the residuals' folds, the parts that depend on row
    order. ``residuals=False`` (or too few complete rows, or fewer than 3 usable features) leaves out the
    residual model.
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError("features must be a DataFrame")
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if first_bar is None and last_bar is None and isinstance(features.index, pd.DatetimeIndex) and len(features):
        first_bar, last_bar = features.index.min(), features.index.max()
    if isinstance(features.index, pd.DatetimeIndex) and not features.index.is_monotonic_increasing:
        features = features.sort_index(kind="stable")
    references: dict[str, FeatureReference] = {}
    for name in features.columns:
        try:
            values = features[name].to_numpy(dtype="float64")
        except (TypeError, ValueError):
            raise ValueError(f"feature {name!r} is not numeric") from None
        references[str(name)] = feature_reference(values, bins=bins, null_profile=null_profile)
    model = fit_residual_model(features, references, bins=bins, null_profile=null_profile) if residuals else None
    return DriftReference(
        features=references,
        bins=bins,
        rows=len(features),
        first_bar=_iso(first_bar),
        last_bar=_iso(last_bar),
        residuals=model,
    )


def feature_reference(values: np.ndarray, *, bins: int = DEFAULT_BINS, null_profile: bool = True) -> FeatureReference:
    """Reference of one feature's training values in time order (module docstring: edges, bins, profile)."""
    values = np.asarray(values, dtype="float64").ravel()
    finite = values[np.isfinite(values)]
    missing_rate = float((len(values) - len(finite)) / len(values)) if len(values) else 0.0
    if len(finite) == 0:
        return FeatureReference(edges=(), shares=(0.0,), missing_rate=missing_rate, count=0)
    quantiles = np.quantile(finite, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = np.unique(quantiles)
    edges = edges[edges < finite.max()]
    shares = bin_shares(finite, edges)
    windows, means, variances = null_psi_profile(finite, edges, shares) if null_profile else ((), (), ())
    return FeatureReference(
        edges=tuple(float(e) for e in edges),
        shares=tuple(float(s) for s in shares),
        missing_rate=missing_rate,
        count=len(finite),
        null_windows=windows,
        null_psi_mean=means,
        null_psi_var=variances,
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


def smoothed_shares(counts: np.ndarray, smoothing: float = PSI_SMOOTHING) -> np.ndarray:
    """``(count + s) / (total + s * bins)`` along the last axis: shares with no zero (:data:`PSI_SMOOTHING`)."""
    counts = np.asarray(counts, dtype="float64")
    total = counts.sum(axis=-1, keepdims=True)
    return (counts + smoothing) / (total + smoothing * counts.shape[-1])


def reference_shares(ref: FeatureReference, smoothing: float = PSI_SMOOTHING) -> np.ndarray:
    """The reference's shares smoothed like a current window's (same rule on both sides of PSI); a no-op in
    practice (no reference bin is empty) but it keeps a hand-made reference with a zero share finite."""
    return smoothed_shares(np.asarray(ref.shares) * ref.count, smoothing)


def psi_from_counts(counts: np.ndarray, expected: np.ndarray, smoothing: float = PSI_SMOOTHING) -> np.ndarray:
    """PSI of bin counts (last axis: bins) against smoothed expected shares: sum (q - p) ln(q / p)."""
    observed = smoothed_shares(counts, smoothing)
    return np.sum((observed - expected) * np.log(observed / expected), axis=-1)


def null_psi_profile(
    finite: np.ndarray,
    edges: np.ndarray | tuple[float, ...],
    shares: np.ndarray | tuple[float, ...],
    *,
    smoothing: float = PSI_SMOOTHING,
    windows: tuple[int, ...] = NULL_PROFILE_WINDOWS,
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """Mean and variance of the PSI of every ``w``-bar window of ``finite`` (time order) against the series'
    own shares, for each ``w`` in ``windows`` up to half the series (module docstring: why).

    Cumulative bin counts give every window's counts at once, and all lengths go through PSI in one batch.
    """
    finite = np.asarray(finite, dtype="float64")
    edges_array = np.asarray(edges, dtype="float64")
    bins, n = len(edges_array) + 1, len(finite)
    usable = [w for w in windows if w <= n // 2]
    if bins < 2 or not usable:
        return (), (), ()
    expected = smoothed_shares(np.asarray(shares, dtype="float64") * n, smoothing)
    cumulative = np.zeros((n + 1, bins))
    cumulative[1:] = np.cumsum(np.eye(bins)[np.searchsorted(edges_array, finite, side="left")], axis=0)
    starts = [np.arange(0, n - w + 1, max(1, (n - w + 1) // _PROFILE_MAX_STARTS)) for w in usable]
    sizes = np.array([len(s) for s in starts])
    first = np.concatenate(starts)
    values = psi_from_counts(cumulative[first + np.repeat(usable, sizes)] - cumulative[first], expected, smoothing)
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    means = np.add.reduceat(values, offsets) / sizes
    variances = np.add.reduceat((values - np.repeat(means, sizes)) ** 2, offsets) / sizes
    return tuple(usable), tuple(float(m) for m in means), tuple(float(v) for v in variances)


def _profile_from_dict(data: Any) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """The optional ``null_profile`` entry; absent (an older reference) means no profile."""
    if data is None:
        return (), (), ()
    try:
        windows = tuple(int(w) for w in data["windows"])
        means = tuple(float(m) for m in data["psi_mean"])
        variances = tuple(float(v) for v in data["psi_var"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed null profile: {exc!r}") from None
    if not len(windows) == len(means) == len(variances):
        raise ValueError("a null profile needs as many means and variances as windows")
    if any(w <= 0 for w in windows) or any(b <= a for a, b in pairwise(windows)):
        raise ValueError("null profile windows must be positive and strictly increasing")
    if not all(np.isfinite(x) and x >= 0 for x in means + variances):
        raise ValueError("null profile means and variances must be finite and >= 0")
    return windows, means, variances


def _iso(moment: datetime | str | None) -> str | None:
    """ISO 8601 text of a bar time (strings are kept as given)."""
    if moment is None or isinstance(moment, str):
        return moment
    if pd.isna(moment):  # NaT
        return None
    return moment.isoformat()
