"""`retrain backtest` as a user runs it: bad input is one `error:` line and exit 2 before any work; a small
run on the user's own folder writes the report (Markdown, JSON, plots) and the same JSON every time,
whatever the number of worker processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retrain.cli import main
from tests.conftest import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "sample_data" / "ohlcv"
SMALL = ("--classifiers", "ridge", "--bootstrap", "50")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own folder in the replay format: two symbols, one under a name of its own."""
    folder = tmp_path_factory.mktemp("history")
    (folder / "1d").mkdir()
    shutil.copy(SAMPLE / "1d" / "ETH.csv", folder / "1d" / "ETH.csv")
    shutil.copy(SAMPLE / "1d" / "LTC.csv", folder / "1d" / "MYCOIN.csv")
    return folder


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--policies", "sometimes"), "unknown policy 'sometimes'"),
        (("--start", "2024-05-01", "--end", "2024-04-01"), "must be after --start"),
        (("--symbols", "ZQX"), "no 1d data for ZQX"),
        (("--symbols", "ETC-USD"), "not symbol names"),
        (("--start", "2015-09-01", "--end", "2015-10-01"), "not enough history before --start 2015-09-01"),
        (("--end", "2026-01-01"), "after its last bar"),
        (("--start", "yesterday"), "'yesterday' is not a date"),
        (("--classifiers", "perceptron"), "--classifiers perceptron: unknown"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(capsys, data_dir: Path, args: tuple[str, ...], needle: str) -> None:
    code = main(["backtest", "--symbols", "ETH", "--data-dir", str(data_dir), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and err.startswith("error: ") and "Traceback" not in err


def test_a_small_backtest_writes_its_report_and_the_same_json_with_any_number_of_jobs(capsys, data_dir, tmp_path):
    period = ("--start", "2024-03-01", "--end", "2024-03-21", "--policies", "never,every-7d")
    common = ["backtest", "--symbols", "ETH,MYCOIN", "--data-dir", str(data_dir), *period, *SMALL]
    assert main([*common, "--jobs", "1", "--report", str(tmp_path / "one")]) == 0
    out = capsys.readouterr().out
    assert "difference from default" in out and "report:" in out
    assert main([*common, "--jobs", "2", "--report", str(tmp_path / "two"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"meta", "summary", "timings"}
    assert printed["meta"]["models"] == ["ETH uptrend", "ETH downtrend", "MYCOIN uptrend", "MYCOIN downtrend"]
    one, two = tmp_path / "one", tmp_path / "two"
    for name in ("report.md", "backtest.json", "timings.json", "pareto.png", "equity.png", "estimate_vs_live.png"):
        assert (one / name).stat().st_size > 0, name
    assert (one / "backtest.json").read_bytes() == (two / "backtest.json").read_bytes()
    report = (one / "report.md").read_text()
    assert "| never |" in report and "| every-7d |" in report and "## Honesty" in report
    document = json.loads((one / "backtest.json").read_text())
    assert set(document["summary"]["policies"]) == {"never", "every-7d", "default"}


def test_a_killed_run_resumes_from_its_finished_units_and_writes_the_same_report(
    capsys, data_dir, tmp_path, monkeypatch
):
    from retrain import backtest

    period = ("--start", "2024-03-01", "--end", "2024-03-11", "--policies", "never")
    common = ["backtest", "--symbols", "ETH,MYCOIN", "--data-dir", str(data_dir), *period, *SMALL, "--jobs", "1"]
    assert main([*common, "--report", str(tmp_path / "whole")]) == 0
    whole = (tmp_path / "whole" / "backtest.json").read_bytes()

    # The same run killed while its third unit replays: the two finished units are on disk, no report yet.
    real_run_unit = backtest.run_unit
    finished: list[str] = []

    def dies_on_the_third(job):
        if len(finished) == 2:
            raise KeyboardInterrupt
        finished.append(job["symbol"] + job["trend"])
        return real_run_unit(job)

    monkeypatch.setattr(backtest, "run_unit", dies_on_the_third)
    assert main([*common, "--report", str(tmp_path / "killed")]) != 0
    assert "stopped: 2 of 4 unit(s) finished and kept in" in capsys.readouterr().out
    saved = sorted(p.name for p in (tmp_path / "killed" / "units").iterdir())
    assert saved == ["ETH_1d_downtrend.json", "ETH_1d_uptrend.json"]
    assert not (tmp_path / "killed" / "backtest.json").exists()

    # Run again: without --resume it says what it could reuse; with it, only the two missing units replay.
    replayed: list[str] = []

    def counted(job):
        replayed.append(job["symbol"] + job["trend"])
        return real_run_unit(job)

    monkeypatch.setattr(backtest, "run_unit", counted)
    assert main([*common, "--report", str(tmp_path / "killed"), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "reused from" in out and "ETH uptrend, ETH downtrend" in out
    assert replayed == ["MYCOINuptrend", "MYCOINdowntrend"]
    assert (tmp_path / "killed" / "backtest.json").read_bytes() == whole
    timings = json.loads((tmp_path / "killed" / "timings.json").read_text())
    assert timings["units_resumed"] == 2

    # Anything the result depends on changes the key: another end day or another setting replays everything.
    replayed.clear()
    later = [a if a != "2024-03-11" else "2024-03-12" for a in common]
    assert main([*later, "--report", str(tmp_path / "killed"), "--resume"]) == 0
    assert len(replayed) == 4
    replayed.clear()
    assert main([*later, "--report", str(tmp_path / "killed")]) == 0  # no --resume: replays, and says so
    assert len(replayed) == 4
    assert "4 unit(s) in" in capsys.readouterr().out
    replayed.clear()
    monkeypatch.setenv("RETRAIN_COOLDOWN_DAYS", "5")
    assert main([*later, "--report", str(tmp_path / "killed"), "--resume"]) == 0
    assert len(replayed) == 4
