"""Acceptance figures of the drift trigger (issue 5) on real daily sample data, with the design of
bench/drift_simulation.py (held-out windows of the training period; see its docstring for why).

Fewer placements than the bench (12 per symbol and window length, 192 windows per length) to stay fast;
the bench reports the same rates with 40.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

BENCH_FILE = Path(__file__).resolve().parents[2] / "bench" / "drift_simulation.py"
PLACEMENTS = 12


def _simulation_module() -> ModuleType:
    """bench/ is not a package: load the file (registered while it runs, dataclasses look themselves up)."""
    name = "_bench_drift_simulation"
    spec = importlib.util.spec_from_file_location(name, BENCH_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    return _simulation_module()


@pytest.fixture(scope="module")
def rates(sim: ModuleType) -> pd.DataFrame:
    histories = sim.load_histories()
    assert len(histories) == 16
    trials, _ = sim.simulate(histories, placements=PLACEMENTS, designs=("held_out",), with_iid_rule=False)
    table = sim.rates(trials).loc["held_out"]
    print(table.to_string())  # shown with -s / on failure: the figures behind the assertions
    return table


@pytest.mark.parametrize("window", [30, 90, 365])
def test_adaptive_rule_false_alarms_at_most_5_percent_at_every_window_length(rates: pd.DataFrame, window: int) -> None:
    assert rates.loc[window, "trials"] >= 150
    assert rates.loc[window, "adaptive_null"] <= 0.05


@pytest.mark.parametrize("window", [30, 90, 365])
def test_fixed_rule_fires_on_almost_every_window_without_drift(rates: pd.DataFrame, window: int) -> None:
    assert rates.loc[window, "fixed_null"] >= 0.9  # the failure SPEC.md describes, measured


def test_adaptive_rule_detects_a_planted_shift_at_90_bars(rates: pd.DataFrame) -> None:
    # Regression floor of what the sound rule reaches (bench: about 86 % with 40 placements); an oracle that
    # rescales its thresholds on these very windows to exactly 5 % false alarms reaches about 87 %.
    assert rates.loc[90, "adaptive_shift"] >= 0.80
    assert rates.loc[365, "adaptive_shift"] >= rates.loc[30, "adaptive_shift"]


@pytest.mark.parametrize(("window", "gain"), [(30, 0.3), (90, 0.25), (365, 0.1)])
def test_residual_psi_is_where_the_detection_comes_from(rates: pd.DataFrame, window: int, gain: float) -> None:
    # Marginal PSI alone: about 30 / 53 / 59 % (bench); a shifted feature breaks away from the features it
    # moves with, which its residual shows. Long windows see more of a persistent feature's range.
    assert rates.loc[window, "adaptive_shift"] >= rates.loc[window, "marginal_shift"] + gain


@pytest.mark.xfail(
    strict=True,
    reason="issue 5's 90 % detection target at 90 bars is not reached with <= 5 % false alarms on "
    "autocorrelated real windows: 86 % (the MACD family, ADX and the OBV/AD changes are too persistent for a "
    "0.5 sd shift to show in 90 bars); figures: bench/drift_simulation.py",
)
def test_issue_target_detection_at_90_bars(rates: pd.DataFrame) -> None:
    assert rates.loc[90, "adaptive_shift"] >= 0.90


def test_simulation_module_documents_its_design(sim: ModuleType) -> None:
    assert "held_out" in (sim.__doc__ or "") and sim.DESIGNS[0] == "held_out"
