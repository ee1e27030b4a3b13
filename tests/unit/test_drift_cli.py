"""`retrain drift --reference A.csv --current B.csv [--json]` on feature tables of the sample data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.data.features import FEATURE_NAMES, feature_table
from common.data.ohlcv import parse_ohlcv_csv
from retrain.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv" / "1d" / "BTC.csv"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    table = feature_table(parse_ohlcv_csv(SAMPLE.read_bytes()))
    folder = tmp_path_factory.mktemp("drift")
    reference, current, shifted = folder / "reference.csv", folder / "current.csv", folder / "shifted.csv"
    table.iloc[40:2000].to_csv(reference, index=False)
    window = table.iloc[1000:1090].copy()  # a window from the reference period: no drift by construction
    window.to_csv(current, index=False)
    for name in ("7_day_RSI", "SlowK", "SlowD"):
        window[name] += 3 * table.iloc[40:2000][name].std()
    window.to_csv(shifted, index=False)
    return reference, current, shifted


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["drift", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_has_a_psi_per_feature_and_a_top_level_decision(tables, capsys) -> None:
    reference, current, _ = tables
    code, out, _ = _run(capsys, "--reference", str(reference), "--current", str(current), "--json")
    report = json.loads(out)
    assert code == 0 and set(report["psi"]) == set(FEATURE_NAMES)
    assert report["drift_detected"] is False and report["decision"] == "no_drift"


def test_a_large_planted_shift_is_detected_and_charted(tables, capsys, tmp_path) -> None:
    reference, _, shifted = tables
    png = tmp_path / "psi.png"
    code, out, _ = _run(capsys, "--reference", str(reference), "--current", str(shifted), "--png", str(png))
    assert code == 0 and "decision: drift" in out
    assert "7_day_RSI" in out and png.read_bytes().startswith(b"\x89PNG")


def test_a_table_without_the_features_is_a_clear_error(tables, capsys, tmp_path) -> None:
    reference, _, _ = tables
    bad = tmp_path / "bad.csv"
    bad.write_text("date,close\n2024-01-01,1\n")
    code, _, err = _run(capsys, "--reference", str(bad), "--current", str(reference))
    assert code == 2 and "missing feature columns" in err and "Traceback" not in err
    code, _, err = _run(capsys, "--reference", str(reference), "--current", str(bad))
    assert code == 2 and "DriftSchemaError" not in err and "7_day_ADX" in err
