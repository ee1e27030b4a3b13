"""Benchmark: compute_features (TA-Lib) against the same 19 features built with the pure-pandas `ta` library.

Run ``.venv/bin/python bench/bench_features.py``. Times the longest daily series (BTC) and every daily
symbol (ms per symbol, median and p90; target <= 50 ms), checks that the peer computes the same thing
(max abs difference per feature once EMA seeds have decayed) and runs the look-ahead harness on both.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from common.data.features import FEATURE_NAMES, WARMUP_BARS, compute_features
from common.data.lookahead import default_cut_points, find_lookahead, violating_features
from common.data.ohlcv import PRICE_COLUMNS, parse_ohlcv_csv

DAILY_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "ohlcv" / "1d"
TARGET_MS = 50.0
REPEATS = 15  # per measurement; the median is reported
BURN_IN = 100  # bars skipped in the agreement check: the EMA seeds differ (TA-Lib: SMA, ta: first value)

# How the peer gets each feature; "nearest" where `ta` has no indicator with exactly these parameters.
PEER_NOTES: dict[str, str] = {
    "7_day_ADX": "ADXIndicator(7).adx()",
    "AroonDown": "AroonIndicator(7); ties pick the oldest extreme (TA-Lib: newest)",
    "AroonUp": "AroonIndicator(7); ties pick the oldest extreme (TA-Lib: newest)",
    "MACD": "MACD(26, 12, 9)",
    "MACD_Signal": "MACD(26, 12, 9)",
    "MACD_Hist": "MACD(26, 12, 9).macd_diff()",
    "7_day_RSI": "RSIIndicator(7)",
    "SlowK": "StochasticOscillator(5, 3).stoch_signal()",
    "SlowD": "nearest: ta has no slow %D; SMA3 of stoch_signal() with pandas",
    "7_day_MFI": "MFIIndicator(7)",
    "7_day_DX": "nearest: ta has no DX; 100*|+DI - -DI|/(+DI + -DI) from ADXIndicator(7)",
    "7_day_TRIX": "TRIXIndicator(7) (already x100)",
    "PPO": "nearest: ta's PPO is EMA-only; SMA(12)/SMA(26) from SMAIndicator",
    "OBV_pct_change": "OnBalanceVolumeIndicator + same pct rule; adds volume on unchanged close",
    "AD_pct_change": "AccDistIndexIndicator + same pct rule",
    "BBANDS_distance_pct": "BollingerBands(7, 2)",
    "2_day_SMA_10_day_SMA_pct_diff": "SMAIndicator(2/10)",
    "2_day_SMA_20_day_SMA_pct_diff": "SMAIndicator(2/20)",
    "10_day_SMA_20_day_SMA_pct_diff": "SMAIndicator(10/20)",
}


def ta_peer_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The 19 features with `ta` (bukosabino) 0.11, same names and NaN rules as compute_features."""
    from ta.momentum import RSIIndicator, StochasticOscillator
    from ta.trend import MACD, ADXIndicator, AroonIndicator, SMAIndicator, TRIXIndicator
    from ta.volatility import BollingerBands
    from ta.volume import AccDistIndexIndicator, MFIIndicator, OnBalanceVolumeIndicator

    high, low, close, volume = (bars[c] for c in ("high", "low", "close", "volume"))
    adx = ADXIndicator(high, low, close, window=7)
    plus_di, minus_di = adx.adx_pos(), adx.adx_neg()
    aroon = AroonIndicator(high, low, window=7)
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9)
    slow_k = StochasticOscillator(high, low, close, window=5, smooth_window=3).stoch_signal()
    bands = BollingerBands(close, window=7, window_dev=2)
    lower = bands.bollinger_lband()
    sma = {n: SMAIndicator(close, window=n).sma_indicator() for n in (2, 10, 12, 20, 26)}

    def pct_diff(a: pd.Series, b: pd.Series) -> pd.Series:
        return ((a - b) / b * 100).where(b != 0)

    def line_pct(line: pd.Series) -> pd.Series:
        previous = line.shift(1)
        return (100 * (line - previous) / previous.abs()).where(previous != 0)

    columns = {
        "7_day_ADX": adx.adx(),
        "AroonDown": aroon.aroon_down(),
        "AroonUp": aroon.aroon_up(),
        "MACD": macd.macd(),
        "MACD_Signal": macd.macd_signal(),
        "MACD_Hist": macd.macd_diff(),
        "7_day_RSI": RSIIndicator(close, window=7).rsi(),
        "SlowK": slow_k,
        "SlowD": slow_k.rolling(3).mean(),
        "7_day_MFI": MFIIndicator(high, low, close, volume, window=7).money_flow_index(),
        "7_day_DX": (100 * (plus_di - minus_di).abs() / (plus_di + minus_di)),
        "7_day_TRIX": TRIXIndicator(close, window=7).trix(),
        "PPO": pct_diff(sma[12], sma[26]),
        "OBV_pct_change": line_pct(OnBalanceVolumeIndicator(close, volume).on_balance_volume()),
        "AD_pct_change": line_pct(AccDistIndexIndicator(high, low, close, volume).acc_dist_index()),
        "BBANDS_distance_pct": ((bands.bollinger_hband() - lower) / lower * 100).where(lower > 0),
        "2_day_SMA_10_day_SMA_pct_diff": pct_diff(sma[2], sma[10]),
        "2_day_SMA_20_day_SMA_pct_diff": pct_diff(sma[2], sma[20]),
        "10_day_SMA_20_day_SMA_pct_diff": pct_diff(sma[10], sma[20]),
    }
    frame = pd.DataFrame({name: columns[name].to_numpy(dtype="float64") for name in FEATURE_NAMES}, index=bars.index)
    return frame.replace([np.inf, -np.inf], np.nan)


IMPLEMENTATIONS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "compute_features (TA-Lib)": compute_features,
    "ta_peer_features (ta 0.11)": ta_peer_features,
}


def load_daily() -> dict[str, pd.DataFrame]:
    """Every daily sample series, with non-positive-price bars dropped as validation does (AAVE)."""
    series = {}
    for path in sorted(DAILY_DIR.glob("*.csv")):
        bars = parse_ohlcv_csv(path.read_bytes(), source=str(path))
        series[path.stem] = bars[(bars[list(PRICE_COLUMNS)] > 0).all(axis=1)]
    return series


def _timings_ms(compute: Callable[[pd.DataFrame], pd.DataFrame], bars: pd.DataFrame, repeats: int) -> list[float]:
    compute(bars)  # warm caches and lazy imports outside the measurement
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        compute(bars)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def run(repeats: int = REPEATS) -> list[dict]:
    """One row per (implementation, workload): BTC alone (spread over repeats) and all daily symbols
    (spread over symbols, each symbol's time being the median of its repeats)."""
    daily = load_daily()
    longest = max(daily, key=lambda s: len(daily[s]))
    rows: list[dict] = []
    for name, compute in IMPLEMENTATIONS.items():
        samples = _timings_ms(compute, daily[longest], repeats)
        rows.append(_row(name, f"{longest} ({len(daily[longest])} bars)", len(daily[longest]), samples))
        per_symbol = [statistics.median(_timings_ms(compute, bars, repeats)) for bars in daily.values()]
        total_bars = sum(len(b) for b in daily.values())
        rows.append(_row(name, f"all {len(daily)} daily symbols", total_bars, per_symbol))
    return rows


def _row(implementation: str, workload: str, bars: int, samples_ms: list[float]) -> dict:
    median = statistics.median(samples_ms)
    return {
        "implementation": implementation,
        "workload": workload,
        "bars": bars,
        "ms_per_symbol_median": round(median, 2),
        "ms_per_symbol_p90": round(_p90(samples_ms), 2),
        "target_met": median <= TARGET_MS,
    }


def agreement(bars: pd.DataFrame) -> list[dict]:
    """Per feature: max abs difference TA-Lib vs `ta` after the burn-in, the difference on the last bar
    (what a live prediction would see) and the share of rows where exactly one side is NaN."""
    ours, peer = compute_features(bars).iloc[BURN_IN:], ta_peer_features(bars).iloc[BURN_IN:]
    rows = []
    for name in FEATURE_NAMES:
        diff = (ours[name] - peer[name]).abs()
        rows.append(
            {
                "feature": name,
                "max_abs_diff": float(diff.iloc[:-1].max()),
                "last_bar_abs_diff": float(diff.iloc[-1]),
                "nan_mismatch_share": float((ours[name].isna() != peer[name].isna()).mean()),
                "peer": PEER_NOTES[name],
            }
        )
    return rows


def lookahead_summary(bars: pd.DataFrame) -> dict[str, list[str]]:
    """Features the look-ahead harness flags, for both implementations (expected: none for ours)."""
    cuts = default_cut_points(len(bars), warmup=WARMUP_BARS)
    return {
        name: sorted(violating_features(find_lookahead(compute, bars, cuts)))
        for name, compute in IMPLEMENTATIONS.items()
    }


def _markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    rows = run()
    print(f"## Feature computation time (target <= {TARGET_MS:.0f} ms per symbol, median of {REPEATS} repeats)\n")
    print(_markdown(rows, list(rows[0])))
    btc = load_daily()["BTC"]
    print(f"\n## Agreement on BTC daily, TA-Lib vs ta (rows after the first {BURN_IN})\n")
    print(_markdown(agreement(btc), ["feature", "max_abs_diff", "last_bar_abs_diff", "nan_mismatch_share", "peer"]))
    print("\n## Look-ahead harness on BTC daily (features whose past values change when the future is cut)\n")
    for name, flagged in lookahead_summary(btc).items():
        print(f"- {name}: {', '.join(flagged) if flagged else 'none'}")


if __name__ == "__main__":
    main()
