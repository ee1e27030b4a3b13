"""PNG charts for MLflow artifacts and notifications: equity curve, confusion matrix, SHAP summary, PSI bars.

Each function returns PNG bytes. Figures are built with ``matplotlib.figure.Figure`` and rendered by
``FigureCanvasAgg`` - never ``pyplot``, which keeps a global figure registry and picks a GUI backend, wrong
in a Lambda or a thread. matplotlib is imported inside the functions so importing this module stays
cheap. PNGs carry no "Software" metadata, so the same inputs give the same bytes.

Bad input (empty, mismatched or non-finite data) raises ValueError here, with a message naming the
argument, rather than failing deep inside matplotlib or producing an empty chart.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.core.numbers import finite_or

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from common.training.explain import ShapResult

DPI = 100
# Colours: one meaning each across all charts.
STRATEGY = "#1f77b4"
BASELINE = "#7f7f7f"
BUY_AND_HOLD = "#ff7f0e"
DRAWDOWN = "#d62728"
TOWARDS_TREND = "#d62728"  # pushes towards the positive class
AWAY_FROM_TREND = "#1f77b4"
DRIFTED = "#d62728"
STABLE = "#4c72b0"
CLASS_LABELS = ("no trend", "trend")


def equity_curve_png(
    strategy_returns: pd.Series,
    *,
    baseline_returns: pd.Series | None = None,
    buy_and_hold: pd.Series | None = None,
    title: str,
    log_scale: bool = False,
) -> bytes:
    """Compounded equity (start = 1) of per-bar simple returns, with the strategy's drawdown below.

    NaN returns count as 0 (no position that bar); infinite ones are refused. Each series is drawn on its
    own index, so a baseline may cover a different span. ``log_scale`` needs every equity value > 0.
    """
    curves = [("strategy", _returns(strategy_returns, "strategy_returns"), STRATEGY, 2.0)]
    if baseline_returns is not None:
        curves.append(("baseline", _returns(baseline_returns, "baseline_returns"), BASELINE, 1.3))
    if buy_and_hold is not None:
        curves.append(("buy and hold", _returns(buy_and_hold, "buy_and_hold"), BUY_AND_HOLD, 1.3))
    equities = [(label, (1.0 + r).cumprod(), color, width) for label, r, color, width in curves]
    if log_scale and any((e <= 0).any() for _, e, _, _ in equities):
        raise ValueError("log_scale needs positive equity; a return <= -100% makes it zero or negative")

    fig = _figure(10, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for label, equity, color, width in equities:
        total = equity.iloc[-1] - 1.0
        top.plot(_x(equity.index), equity.to_numpy(), color=color, linewidth=width, label=f"{label} ({total:+.1%})")
    top.axhline(1.0, color="black", linewidth=0.6, alpha=0.5)
    if log_scale:
        from matplotlib.ticker import FuncFormatter

        top.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 2 rather than 2x10^0
        top.yaxis.set_major_formatter(plain)
        top.yaxis.set_minor_formatter(plain)
    top.set_ylabel("equity (start = 1)" + (", log scale" if log_scale else ""))
    top.set_title(title)
    top.legend(loc="upper left", frameon=False)
    top.grid(alpha=0.3)

    strategy = equities[0][1]
    peak = np.maximum.accumulate(np.maximum(strategy.to_numpy(), 1.0))  # the starting capital is a peak too
    drawdown = strategy.to_numpy() / peak - 1.0
    x = _x(strategy.index)
    bottom.fill_between(x, drawdown, 0.0, color=DRAWDOWN, alpha=0.35, linewidth=0)
    bottom.plot(x, drawdown, color=DRAWDOWN, linewidth=0.8)
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(_percent_formatter())
    bottom.set_ylim(min(float(drawdown.min()) * 1.1, -0.01), 0.0)
    bottom.text(
        0.01, 0.08, f"max drawdown {drawdown.min():.1%}", transform=bottom.transAxes, color=DRAWDOWN, fontsize=9
    )
    bottom.grid(alpha=0.3)
    bottom.set_xlabel(_x_label(strategy.index))
    return _png(fig)


def confusion_matrix_png(
    y_true: Sequence[Any] | np.ndarray | pd.Series, y_pred: Sequence[Any] | np.ndarray | pd.Series, *, title: str
) -> bytes:
    """2x2 confusion matrix (rows: actual, columns: predicted) with counts and row-normalised rates.

    Labels are 0/1 or booleans (1 = "trend"). The row rates on the diagonal are the gate's
    negative_accuracy (top left) and positive_accuracy (bottom right).
    """
    truth, predicted = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    if len(truth) != len(predicted):
        raise ValueError(f"y_true and y_pred differ in length ({len(truth)} vs {len(predicted)})")
    counts = np.zeros((2, 2), dtype=int)
    np.add.at(counts, (truth, predicted), 1)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros((2, 2)), where=totals > 0)

    fig = _figure(5.6, 5.0)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(2):
        for j in range(2):
            rate = f"{rates[i, j]:.1%}" if totals[i, 0] else "n/a"
            ax.text(
                j,
                i,
                f"{counts[i, j]:,}\n{rate} of row",
                ha="center",
                va="center",
                fontsize=12,
                color="white" if rates[i, j] > 0.6 else "black",
            )
    ax.set_xticks([0, 1], labels=[f"predicted\n{label}" for label in CLASS_LABELS])
    ax.set_yticks([0, 1], labels=[f"actual\n{label}" for label in CLASS_LABELS])
    accuracy = np.trace(counts) / counts.sum()
    predicted_positive = counts[:, 1].sum()
    precision = f"{counts[1, 1] / predicted_positive:.1%}" if predicted_positive else "n/a"
    ax.set_title(f"{title}\nn = {counts.sum():,}, accuracy {accuracy:.1%}, precision {precision}", fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of actual row", format=_percent_formatter())
    return _png(fig)


def shap_summary_png(result: ShapResult, *, title: str, top: int = 19) -> bytes:
    """Mean |SHAP| per feature (bars, largest on top), plus per-row SHAP dots when values are available.

    Bar colour: sign of the feature-value/SHAP correlation, i.e. whether higher values of the feature
    push towards "trend" (red) or away from it (blue) - the stable reading of direction; the signed mean
    (``ShapResult.direction``) depends on where the explained window's values sit. The dot panel shows
    each explained row's SHAP value, coloured by that row's feature value (rank within the rows).
    """
    if top < 1:
        raise ValueError("top must be >= 1")
    ranked = [(name, value) for name, value in result.importance.items()][:top]
    if not ranked:
        raise ValueError("the SHAP result has no features")
    if not all(math.isfinite(v) for _, v in ranked):
        raise ValueError("the SHAP result has non-finite importances")
    names = [name for name, _ in ranked]
    values, data = result.values, result.data
    dots = (
        values is not None
        and data is not None
        and getattr(values, "ndim", 0) == 2
        and values.shape[0] > 0
        and all(name in data.columns for name in names)
    )

    fig = _figure(12 if dots else 8, max(3.5, 1.9 + 0.36 * len(names)))
    axes = fig.subplots(1, 2, sharey=True, width_ratios=[1, 1.3]) if dots else [fig.subplots()]
    bars = axes[0]
    y = np.arange(len(names))[::-1]  # most important on top
    colors = [TOWARDS_TREND if result.correlation.get(name, 0.0) >= 0 else AWAY_FROM_TREND for name in names]
    bars.barh(y, [value for _, value in ranked], color=colors, height=0.7)
    bars.set_yticks(y, labels=names)
    bars.set_xlabel(f"mean |SHAP| ({_space(result.space)})")
    bars.grid(axis="x", alpha=0.3)
    bars.legend(
        handles=[
            _patch(TOWARDS_TREND, "higher value -> towards trend"),
            _patch(AWAY_FROM_TREND, "higher value -> away from trend"),
        ],
        loc="lower right",
        frameon=False,
        fontsize=8,
    )
    if dots:
        _shap_dots(axes[1], fig, values, data, names, y, result.space)
    status = "" if result.complete else f" of {result.requested_rows} requested (time budget)"
    fig.suptitle(title, fontsize=13)
    bars.set_title(
        f"method: {result.method}, {result.rows} rows{status}, {result.seconds:.2f} s",
        fontsize=9,
        loc="left",
        color="#555555",
    )
    return _png(fig)


def psi_bars_png(psi: Mapping[str, float], *, threshold: float | Mapping[str, float], title: str) -> bytes:
    """Horizontal PSI bar per feature (largest on top), drifted ones (PSI > threshold) highlighted.

    ``threshold`` is one value (a vertical line) or one per feature (a tick on each bar, e.g. thresholds
    corrected for the window size). A NaN PSI (feature not measurable) is drawn as a labelled gap.
    """
    if not psi:
        raise ValueError("psi is empty: nothing to plot")
    items = sorted(psi.items(), key=lambda kv: (-finite_or(kv[1], -math.inf), kv[0]))
    names = [name for name, _ in items]
    scores = np.array([float(value) for _, value in items])
    if np.isinf(scores).any() or (scores[np.isfinite(scores)] < 0).any():
        raise ValueError("PSI values must be finite and >= 0 (NaN marks a feature that could not be measured)")
    if isinstance(threshold, Mapping):
        missing = [name for name in names if name not in threshold]
        if missing:
            raise ValueError(f"threshold has no value for {missing}")
        limits = np.array([float(threshold[name]) for name in names])
    else:
        limits = np.full(len(names), float(threshold))
    if not np.isfinite(limits).all() or (limits < 0).any():
        raise ValueError("thresholds must be finite and >= 0")
    drifted = np.isfinite(scores) & (scores > limits)

    fig = _figure(9, max(3.5, 2.0 + 0.34 * len(names)))
    ax = fig.subplots()
    y = np.arange(len(names))[::-1]
    shown = np.nan_to_num(scores, nan=0.0)
    ax.barh(y, shown, color=[DRIFTED if d else STABLE for d in drifted], height=0.7)
    ax.set_yticks(y, labels=names)
    right = max(float(shown.max()), float(limits.max())) * 1.15 or 1.0
    for yi, score, flag in zip(y, scores, drifted, strict=True):
        text = "n/a" if math.isnan(score) else f"{score:.3f}"
        ax.text(
            min(finite_or(score, 0.0), right) + right * 0.01,
            yi,
            text,
            va="center",
            fontsize=8,
            color=DRIFTED if flag else "#333333",
        )
    if isinstance(threshold, Mapping):
        ax.scatter(limits, y, marker="|", s=260, color="black", linewidths=2, zorder=3, label="threshold")
    else:
        ax.axvline(float(threshold), color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}")
    ax.set_xlim(0, right * 1.1)
    ax.set_xlabel("PSI (live window vs training reference)")
    ax.set_title(f"{title}\n{int(drifted.sum())} of {len(names)} features drifted", fontsize=12)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[*ax.get_legend_handles_labels()[0], _patch(DRIFTED, "drifted"), _patch(STABLE, "not drifted")],
        loc="lower right",
        frameon=False,
        fontsize=9,
    )
    return _png(fig)


def _shap_dots(
    ax: Axes, fig: Figure, values: np.ndarray, data: pd.DataFrame, names: list[str], y: np.ndarray, space: str
) -> None:
    """Beeswarm-like panel: one dot per explained row and feature, jittered, coloured by value rank."""
    rng = np.random.default_rng(0)  # fixed jitter: same inputs, same picture
    columns = list(data.columns)
    scatter = None
    for yi, name in zip(y, names, strict=True):
        shap_column = values[:, columns.index(name)]
        feature = data[name].to_numpy(dtype="float64")
        rank = pd.Series(feature).rank(pct=True).fillna(0.5).to_numpy()
        jitter = rng.uniform(-0.28, 0.28, size=len(shap_column))
        scatter = ax.scatter(
            shap_column, yi + jitter, c=rank, cmap="coolwarm", vmin=0, vmax=1, s=7, alpha=0.75, linewidths=0
        )
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel(f"SHAP value per row ({_space(space)}); > 0 pushes towards trend")
    ax.grid(axis="x", alpha=0.3)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, shrink=0.6, pad=0.01)
        bar.set_ticks([0, 1], labels=["low", "high"])
        bar.set_label("feature value (rank)")


def _returns(series: pd.Series, name: str) -> pd.Series:
    """Validated per-bar returns: a non-empty numeric Series without infinities; NaN -> 0."""
    if not isinstance(series, pd.Series):
        raise ValueError(f"{name} must be a pandas Series")
    if series.empty:
        raise ValueError(f"{name} is empty: no returns to plot")
    try:
        values = series.astype("float64")
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric") from None
    if np.isinf(values.to_numpy()).any():
        raise ValueError(f"{name} has infinite returns")
    return values.fillna(0.0)


def _binary(labels: Sequence[Any] | np.ndarray | pd.Series, name: str) -> np.ndarray:
    """0/1 integer labels; refuses empty input and anything other than 0, 1, False, True."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if array.size == 0:
        raise ValueError(f"{name} is empty: no predictions to plot")
    if array.dtype == bool:
        return array.astype(int)
    try:
        numbers = array.astype("float64")
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold 0/1 labels") from None
    if not np.isin(numbers, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold only 0/1 labels (1 = trend)")
    return numbers.astype(int)


def _x(index: pd.Index) -> np.ndarray:
    """x values matplotlib plots natively: naive UTC datetime64 for a DatetimeIndex, else the labels."""
    if isinstance(index, pd.DatetimeIndex):
        return (index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index).to_numpy()
    return index.to_numpy()


def _x_label(index: pd.Index) -> str:
    return "date (UTC)" if isinstance(index, pd.DatetimeIndex) else "bar"


def _space(space: str) -> str:
    return {"log_odds": "log-odds", "probability": "probability"}.get(space, space)


def _patch(color: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=color, label=label)


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def _figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with an Agg canvas and constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


# --- backtest ----------------------------------------------------------------------------------------------------
POLICY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def policy_pareto_png(points: Mapping[str, tuple[float, float, float, float]], *, title: str) -> bytes:
    """Cost against worth per policy: trainings per model (x) and pooled live overall_score (y) with its
    interval (low, high). ``points``: policy -> (trainings per model, score, low, high)."""
    if not points:
        raise ValueError("points is empty")
    fig = _figure(8, 5.5)
    axes = fig.subplots()
    for (name, (x, y, low, high)), color in zip(points.items(), _cycle(POLICY_COLORS, len(points)), strict=True):
        if not all(math.isfinite(v) for v in (x, y)):
            continue
        err = [[max(y - low, 0.0)], [max(high - y, 0.0)]] if math.isfinite(low) and math.isfinite(high) else None
        axes.errorbar([x], [y], yerr=err, fmt="o", color=color, capsize=4, markersize=7, label=name)
        axes.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=9, color=color)
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_xlabel("trainings per model (log scale)")
    axes.set_ylabel("live overall_score, pooled (95 % block-bootstrap interval)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return _png(fig)


def policy_equity_png(curves: Mapping[str, pd.Series], *, title: str) -> bytes:
    """Pooled equity (equal weight across models, start = 1) of following each policy's served signals."""
    if not curves:
        raise ValueError("curves is empty")
    fig = _figure(10, 5.5)
    axes = fig.subplots()
    for (name, equity), color in zip(curves.items(), _cycle(POLICY_COLORS, len(curves)), strict=True):
        if equity.empty:
            continue
        total = float(equity.iloc[-1]) - 1.0
        axes.plot(_x(equity.index), equity.to_numpy(), color=color, linewidth=1.6, label=f"{name} ({total:+.1%})")
    axes.axhline(1.0, color="black", linewidth=0.6, alpha=0.5)
    axes.set_ylabel("equity of the pooled strategy (start = 1)")
    axes.set_title(title)
    axes.legend(loc="upper left", frameon=False)
    axes.grid(alpha=0.3)
    return _png(fig)


def estimate_vs_live_png(points: Mapping[str, Sequence[tuple[float, float]]], *, title: str, metric: str) -> bytes:
    """Per served version: what the gate estimated (x) against what it realized live (y), one colour per
    policy; points below the diagonal promised more than they delivered."""
    fig = _figure(7, 6.5)
    axes = fig.subplots()
    values: list[float] = []
    for (name, pairs), color in zip(points.items(), _cycle(POLICY_COLORS, len(points)), strict=True):
        finite = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
        if not finite:
            continue
        xs, ys = zip(*finite, strict=True)
        values += [*xs, *ys]
        axes.scatter(xs, ys, color=color, alpha=0.7, s=28, label=f"{name} ({len(finite)} versions)")
    if values:
        low, high = min(values), max(values)
        pad = (high - low) * 0.05 or 0.05
        axes.plot([low - pad, high + pad], [low - pad, high + pad], color="black", linewidth=0.8, alpha=0.6)
    axes.set_xlabel(f"{metric} estimated at training (walk-forward)")
    axes.set_ylabel(f"{metric} realized while served")
    axes.set_title(title)
    if values:
        axes.legend(loc="upper left", frameon=False, fontsize=9)
    else:
        axes.text(0.5, 0.5, "no served version has enough resolved outcomes yet", ha="center", transform=axes.transAxes)
    axes.grid(alpha=0.3)
    return _png(fig)


def _cycle(colors: Sequence[str], n: int) -> list[str]:
    return [colors[i % len(colors)] for i in range(n)]
