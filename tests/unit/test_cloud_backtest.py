"""common.backtest.cloud and the backtest events, without a stack: the requests a Map iteration and the summary
accept, one unit's round trip through an object store, and the refusals that keep a report from mixing runs.

The checks `retrain backtest` shares with the Lambda (common.backtest.replay.check_history) refuse the same things in
both, each in its own words."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from common.aws.storage import MemoryObjectStore
from common.backtest.cloud import BacktestRunError, run_unit, summarize_units
from common.backtest.replay import check_history
from common.core.errors import ConfigurationError, DataNotFoundError
from common.core.keys import backtest_report_key, backtest_unit_key
from common.core.settings import load_settings
from common.data.ohlcv import parse_ohlcv_csv
from common.loop.events import BacktestModelEvent, BacktestModelResult, BacktestSummarizeEvent
from tests.conftest import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "sample_data" / "ohlcv"
REQUEST: dict[str, Any] = {
    "run_id": "bt-unit",
    "start": "2024-11-01",
    "end": "2024-11-04",
    "policies": ["never"],
    "classifiers": ["lightgbm"],
}


def _btc() -> Any:
    return parse_ohlcv_csv((SAMPLE / "1d" / "BTC.csv").read_bytes())


def _store_with_btc() -> MemoryObjectStore:
    from common.data.bar_store import OhlcvStore

    objects = MemoryObjectStore("data")
    OhlcvStore(objects).append("BTC", "1d", _btc(), as_of=datetime(2025, 3, 1, tzinfo=UTC))  # type: ignore[arg-type]
    return objects


# --- the events ------------------------------------------------------------------------------------------------
def test_policies_are_normalised_as_the_cli_does() -> None:
    event = BacktestModelEvent.model_validate(
        {**REQUEST, "symbol": "BTC", "trend": "uptrend", "policies": ["never", "never"]}
    )
    assert event.policies == ("never", "default")
    assert event.start == datetime(2024, 11, 1, tzinfo=UTC) and event.interval is None


@pytest.mark.parametrize(
    ("change", "location", "message"),
    [
        ({"policies": ["sometimes"]}, "policies", "unknown policy 'sometimes'"),
        ({"policies": ["never,default"]}, "policies", "one policy name per item"),
        ({"start": "2024-11-01T10:00:00Z"}, "start", "must be a day"),
        ({"end": "2024-10-01"}, "", "must be after start"),
        ({"classifiers": ["lightgbm", "prophet"]}, "classifiers.1", "'random_forest'"),
        ({"trend": "sideways"}, "trend", "'uptrend' or 'downtrend'"),
        ({"symbol": "btc"}, "symbol", "should match pattern"),
        ({"reason": "manual"}, "reason", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_model_request_names_its_field(change: dict[str, Any], location: str, message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        BacktestModelEvent.model_validate({**REQUEST, "symbol": "BTC", "trend": "uptrend", **change})
    (error,) = excinfo.value.errors()
    assert ".".join(str(part) for part in error["loc"]) == location
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    "result",
    [
        {"symbol": "BTC", "trend": "uptrend", "status": "done"},
        {"symbol": "BTC", "trend": "uptrend", "status": "failed"},
    ],
)
def test_a_map_result_has_the_fields_of_its_status(result: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="names its"):
        BacktestModelResult.model_validate(result)


# --- one unit, then the summary --------------------------------------------------------------------------------
def test_a_unit_round_trip_through_the_store() -> None:
    objects = _store_with_btc()
    event = BacktestModelEvent.model_validate({**REQUEST, "symbol": "BTC", "trend": "uptrend"})
    done = run_unit(objects, event)  # type: ignore[arg-type]
    key = backtest_unit_key("bt-unit", "BTC", "uptrend")
    assert done.status == "done" and done.key == key
    unit = objects.get_json(key)
    assert set(unit["result"]["policies"]) == {"never", "default"} and unit["timings"]["model"] == "BTC uptrend"
    assert done.trainings == {name: len(run["trainings"]) for name, run in unit["result"]["policies"].items()}

    failed = {"symbol": "NODATA", "trend": "uptrend", "status": "failed", "error": "DataNotFoundError", "cause": "{}"}
    request = BacktestSummarizeEvent.model_validate(
        {**REQUEST, "results": [done.model_dump(mode="json"), failed], "replicates": 20, "max_concurrency": 4}
    )
    report = summarize_units(objects, request, now=datetime.now(UTC))  # type: ignore[arg-type]
    assert report.models == ["BTC uptrend"] and [f["model"] for f in report.failed_models] == ["NODATA uptrend"]
    assert set(report.files) == {
        "report.md",
        "backtest.json",
        "timings.json",
        "pareto.png",
        "equity.png",
        "estimate_vs_live.png",
    }
    document = json.loads(objects.get_bytes(backtest_report_key("bt-unit", "backtest.json")))
    assert (
        document["models"] == [unit["result"]] and document["meta"]["failed_models"][0]["error"] == "DataNotFoundError"
    )
    assert json.loads(objects.get_bytes(report.files["timings.json"]))["jobs"] == 4

    # A result of another run, or a unit written for another period, is refused rather than mixed in.
    foreign = {**done.model_dump(mode="json"), "key": backtest_unit_key("other-run", "BTC", "uptrend")}
    with pytest.raises(BacktestRunError, match="is not this run's"):
        summarize_units(
            objects, BacktestSummarizeEvent.model_validate({**REQUEST, "results": [foreign]}), now=datetime.now(UTC)
        )  # type: ignore[arg-type]
    longer = BacktestSummarizeEvent.model_validate(
        {**REQUEST, "end": "2024-11-05", "results": [done.model_dump(mode="json")]}
    )
    with pytest.raises(BacktestRunError, match="not this run's"):
        summarize_units(objects, longer, now=datetime.now(UTC))  # type: ignore[arg-type]


def test_no_completed_model_is_an_error_naming_each_failure() -> None:
    failed = {"symbol": "NODATA", "trend": "uptrend", "status": "failed", "error": "DataNotFoundError"}
    request = BacktestSummarizeEvent.model_validate({**REQUEST, "results": [failed]})
    with pytest.raises(BacktestRunError, match=r"no model completed \(NODATA uptrend: DataNotFoundError\)"):
        summarize_units(MemoryObjectStore("data"), request, now=datetime.now(UTC))  # type: ignore[arg-type]


def test_a_unit_without_data_or_history_writes_nothing() -> None:
    objects = _store_with_btc()
    with pytest.raises(DataNotFoundError, match="no 1d bars for ETH"):
        run_unit(objects, BacktestModelEvent.model_validate({**REQUEST, "symbol": "ETH", "trend": "uptrend"}))  # type: ignore[arg-type]
    early = BacktestModelEvent.model_validate({**REQUEST, "symbol": "BTC", "trend": "uptrend", "start": "2014-10-01"})
    with pytest.raises(ConfigurationError, match="not enough history before start 2014-10-01"):
        run_unit(objects, early)  # type: ignore[arg-type]
    assert not list(objects.list_keys("backtests/"))


# --- the history check shared with retrain backtest -----------------------------------------------
def test_check_history_refuses_what_the_cli_plan_refuses() -> None:
    from retrain.backtest import plan

    settings = load_settings(symbols=("BTC",))
    last = _btc().index.max().to_pydatetime()
    cases = [
        (datetime(2024, 11, 1, tzinfo=UTC), last.replace(year=last.year + 1)),
        (datetime(2014, 10, 1, tzinfo=UTC), datetime(2014, 11, 1, tzinfo=UTC)),
    ]
    for start, end in cases:
        with pytest.raises(ConfigurationError) as cli:
            plan(
                symbols="BTC",
                start=start,
                end=end,
                policies="never",
                classifiers="lightgbm",
                interval="1d",
                data_dir=SAMPLE,
            )
        with pytest.raises(ConfigurationError) as shared:
            check_history(
                _btc(), symbol="BTC", trends=["uptrend", "downtrend"], start=start, end=end, settings=settings
            )
        # The same refusal and figures; the CLI names its flags (--start, --end) where the request names its fields.
        as_flags = str(shared.value).replace(" end 2", " --end 2").replace(" start 2", " --start 2")
        assert as_flags.split(";")[0] in str(cli.value)
