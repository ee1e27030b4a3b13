"""PNG charts (common.training.plots): valid images from normal and edge-case inputs, clear errors for bad ones,
and no pyplot (global figure state, GUI backend) anywhere."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.training.explain import ShapResult
from common.training.plots import confusion_matrix_png, equity_curve_png, psi_bars_png, shap_summary_png

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(payload: bytes) -> tuple[int, int]:
    """Signature, decodes, and a size that a human can read (not a 1-pixel or a poster-sized image)."""
    assert payload.startswith(PNG_SIGNATURE)
    assert 5_000 < len(payload) < 2_000_000
    with Image.open(io.BytesIO(payload)) as image:
        image.load()
        width, height = image.size
    assert 300 <= width <= 2000 and 300 <= height <= 2000
    return width, height


def _returns(n: int, seed: int = 0, tz: str | None = "UTC") -> pd.Series:
    index = pd.date_range("2023-01-01", periods=n, freq="D", tz=tz)
    return pd.Series(np.random.default_rng(seed).normal(0.001, 0.03, size=n), index=index)


def _shap_result(n_rows: int = 40, n_features: int = 5) -> ShapResult:
    rng = np.random.default_rng(0)
    names = [f"feature_{i}" for i in range(n_features)]
    data = pd.DataFrame(rng.normal(size=(n_rows, n_features)), columns=names)
    values = data.to_numpy() * np.linspace(1.0, 0.1, n_features) * np.where(np.arange(n_features) % 2, -1, 1)
    magnitude = np.abs(values).mean(axis=0) if n_rows else np.linspace(1.0, 0.1, n_features)
    return ShapResult(
        importance={name: float(m) for name, m in zip(names, magnitude, strict=True)},
        direction={name: float(v) for name, v in zip(names, values.mean(axis=0) if n_rows else magnitude, strict=True)},
        correlation={name: (1.0 if i % 2 == 0 else -1.0) for i, name in enumerate(names)},
        method="lightgbm_pred_contrib",
        space="log_odds",
        rows=n_rows,
        requested_rows=max(n_rows, 1),
        seconds=0.01,
        base_value=0.0,
        values=values,
        data=data,
    )


def test_equity_curve_with_baselines() -> None:
    png = equity_curve_png(
        _returns(500), baseline_returns=_returns(500, 1) * 0.5, buy_and_hold=_returns(400, 2), title="BTC uptrend"
    )
    _check_png(png)
    _check_png(equity_curve_png(_returns(500), title="log", log_scale=True))


def test_equity_curve_edge_cases() -> None:
    _check_png(equity_curve_png(pd.Series([0.01]), title="one bar, plain index"))
    _check_png(equity_curve_png(_returns(30, tz=None).where(lambda s: s > 0), title="NaN = flat, naive index"))
    _check_png(equity_curve_png(pd.Series(0.0, index=range(20)), title="no trades, no drawdown"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy_returns": pd.Series([], dtype=float)}, "strategy_returns is empty"),
        ({"strategy_returns": pd.Series([0.1, np.inf])}, "infinite"),
        ({"strategy_returns": [0.1, 0.2]}, "must be a pandas Series"),
        ({"strategy_returns": pd.Series(["a", "b"])}, "numeric"),
        ({"strategy_returns": _returns(5), "baseline_returns": pd.Series([], dtype=float)}, "baseline_returns"),
        ({"strategy_returns": pd.Series([0.1, -1.0]), "log_scale": True}, "log_scale"),
    ],
)
def test_equity_curve_refuses_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        equity_curve_png(title="bad", **kwargs)


def test_confusion_matrix() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=300)
    _check_png(confusion_matrix_png(truth, np.where(rng.random(300) < 0.8, truth, 1 - truth), title="BTC uptrend"))
    _check_png(confusion_matrix_png(pd.Series([True, False, True]), [1, 0, 0], title="booleans"))
    _check_png(confusion_matrix_png([0, 0, 0], [0, 1, 0], title="only one actual class"))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        ([], [], "y_true is empty"),
        ([0, 1], [1], "differ in length"),
        ([0, 2], [0, 1], "0/1"),
        (["no", "yes"], [0, 1], "0/1"),
        ([0, np.nan], [0, 1], "0/1"),
    ],
)
def test_confusion_matrix_refuses_bad_input(y_true: list, y_pred: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        confusion_matrix_png(y_true, y_pred, title="bad")


def test_shap_summary() -> None:
    wide, _ = _check_png(shap_summary_png(_shap_result(), title="with dots"))
    bars_only, _ = _check_png(shap_summary_png(_shap_result(n_rows=0), title="no rows: bars only"))
    assert bars_only < wide
    _check_png(shap_summary_png(_shap_result(n_features=19), title="top 3", top=3))


def test_shap_summary_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="top"):
        shap_summary_png(_shap_result(), title="bad", top=0)
    with pytest.raises(ValueError, match="no features"):
        shap_summary_png(
            ShapResult({}, {}, {}, "permutation", "probability", 0, 0, 0.0, 0.0, np.empty((0, 0)), pd.DataFrame()),
            title="bad",
        )


def test_psi_bars() -> None:
    psi = {f"f{i}": v for i, v in enumerate([0.01, 0.3, 0.05, float("nan"), 0.22, 0.0])}
    _check_png(psi_bars_png(psi, threshold=0.2, title="one threshold"))
    _check_png(psi_bars_png(psi, threshold={name: 0.1 + 0.02 * i for i, name in enumerate(psi)}, title="per feature"))
    _check_png(psi_bars_png({"only": 0.0}, threshold=0.0, title="all zero"))


@pytest.mark.parametrize(
    ("psi", "threshold", "match"),
    [
        ({}, 0.2, "empty"),
        ({"a": -0.1}, 0.2, ">= 0"),
        ({"a": float("inf")}, 0.2, "finite"),
        ({"a": 0.1, "b": 0.2}, {"a": 0.2}, "no value for"),
        ({"a": 0.1}, float("nan"), "thresholds"),
    ],
)
def test_psi_bars_refuse_bad_input(psi: dict, threshold: float | dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        psi_bars_png(psi, threshold=threshold, title="bad")


def test_same_input_same_bytes() -> None:
    assert shap_summary_png(_shap_result(), title="t") == shap_summary_png(_shap_result(), title="t")
    assert equity_curve_png(_returns(50), title="t") == equity_curve_png(_returns(50), title="t")


def test_no_pyplot_and_no_matplotlib_at_import() -> None:
    """pyplot holds global figures and picks a backend; the charts must never pull it in."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, pandas as pd
        import common.training.plots as plots
        assert "matplotlib" not in sys.modules, "matplotlib imported with common.training.plots"
        from common.training.explain import ShapResult
        r = pd.Series([0.01, -0.02, 0.03], index=pd.date_range("2024-01-01", periods=3, tz="UTC"))
        plots.equity_curve_png(r, baseline_returns=r, buy_and_hold=r, title="t", log_scale=True)
        plots.confusion_matrix_png([0, 1, 1], [0, 1, 0], title="t")
        data = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 1.0]})
        shap = ShapResult({"a": 1.0, "b": 0.5}, {"a": 0.1, "b": -0.1}, {"a": 1.0, "b": -1.0}, "m", "log_odds",
                          2, 2, 0.0, 0.0, data.to_numpy(), data)
        plots.shap_summary_png(shap, title="t")
        plots.psi_bars_png({"a": 0.3, "b": 0.1}, threshold=0.2, title="t")
        print("pyplot" if "matplotlib.pyplot" in sys.modules else "clean")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "clean"
