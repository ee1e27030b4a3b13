"""Issue 15, part 3: ingestion that says why, on moto's S3 (in-process).

- every refused row of a user's CSV is reported with its time and reason (counts per reason, then the
  rows), by the summary, its JSON, `retrain ingest` (text and --json), the Lambda handler and
  `retrain validate`;
- a cell that is not a number refuses its row only, naming the row and the column;
- a file named after an invalid symbol (ETC-USD.csv) is said to be misnamed, not missing;
- `retrain ingest --replay-dir DIR --symbols ZQX` needs no sample data for ZQX;
- a first ingest from a replay folder takes the whole file, and `--backfill` adds older bars to a stored
  series: validated, idempotent, a differing stored bar never rewritten but refused and reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.aws.storage import S3ObjectStore
from common.core.errors import DataFormatError, UnknownSymbolError
from common.core.keys import ohlcv_key
from common.core.settings import SYMBOL_RULE, load_settings
from common.data.bar_store import OhlcvStore
from common.data.ingestion import DEFAULT_BACKFILL_BARS, SymbolIngestion, ingest_symbols, run_ingestion
from common.data.market_feed import ReplayProvider
from common.data.ohlcv import parse_ohlcv_csv
from tests.conftest import versioned_bucket
from tests.planted_csv import (
    AS_OF,
    DAYS_STORED,
    FINDINGS,
    HEADER,
    REFUSED,
    SYMBOL,
    iso,
    write_clean,
    write_planted,
)

BUCKET = "retrain-ingest-reports"
FAR = datetime(2030, 1, 1, tzinfo=UTC)  # an as-of after every bar of the clean files


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with versioned_bucket(BUCKET) as client:
        yield client


@pytest.fixture
def store(s3: Any) -> OhlcvStore:
    return OhlcvStore(S3ObjectStore(BUCKET, s3))


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    return write_planted(tmp_path / "mine")


def versions(s3: Any, symbol: str) -> int:
    return len(s3.list_object_versions(Bucket=BUCKET, Prefix=ohlcv_key(symbol, "1d")).get("Versions", []))


def ingest(store: OhlcvStore, folder: Path, symbol: str = SYMBOL, as_of: datetime = AS_OF, **kwargs: Any):
    return ingest_symbols(store, ReplayProvider(folder), [symbol], interval="1d", as_of=as_of, **kwargs)


def refused_rows(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(row["time"], row["kind"], row["reason"]) for row in document["rejections"]]


EXPECTED_ROWS = [(iso(label), kind, reason) for label, kind, reason in REFUSED]


def assert_text_lists_every_finding(text: str) -> None:
    """Counts per reason first, then one line per refused row with its time, kind and reason."""
    lines = text.splitlines()
    for kind, (severity, count, _) in FINDINGS.items():
        assert any(line.split()[:3] == [str(count), kind, severity] for line in lines), (kind, text)
    header = next(n for n, line in enumerate(lines) if line.strip() == "refused rows:")
    assert all(not line.strip().startswith(REFUSED[0][0]) for line in lines[:header])
    rows = [line.strip() for line in lines[header + 1 : header + 1 + len(REFUSED)]]
    for line, (label, kind, reason) in zip(rows, REFUSED, strict=True):
        assert line.startswith(label) and kind in line and line.endswith(reason), line


# --- 1. each refused row with its time and reason ---------------------------------------------------------
def test_every_refused_row_of_a_planted_file_is_reported_with_its_time_and_reason(
    store: OhlcvStore, planted: Path
) -> None:
    summary = ingest(store, planted)
    [item] = summary.symbols
    document = json.loads(json.dumps(summary.to_dict()))["symbols"][0]

    assert (item.status, item.appended, item.rejected_rows) == ("created", DAYS_STORED, len(REFUSED))
    assert refused_rows(document) == EXPECTED_ROWS
    found = {issue["kind"]: (issue["severity"], issue["count"], issue["examples"][0]) for issue in document["issues"]}
    assert found == FINDINGS
    assert summary.to_dict()["rejected_rows"] == len(REFUSED)
    # Only the valid bars were stored, and none of the refused ones.
    stored = store.read(SYMBOL, "1d").bars
    assert len(stored) == DAYS_STORED
    assert pd.Timestamp("2024-01-26", tz="UTC") in stored.index  # the later copy of the conflicting duplicate
    assert stored.loc["2024-01-26", "close"].item() == 102
    for label, *_ in REFUSED[:-1]:
        assert pd.Timestamp(label, tz="UTC") not in stored.index


def test_the_text_summary_gives_counts_per_reason_then_each_refused_row(store: OhlcvStore, planted: Path) -> None:
    text = ingest(store, planted).render()
    assert f"{SYMBOL}: {len(REFUSED)} row(s) refused" in text
    assert f"{len(REFUSED)} row(s) refused" in text.splitlines()[2]  # the closing line of the table says it too
    assert_text_lists_every_finding(text)


def test_a_clean_ingest_prints_no_findings_section(store: OhlcvStore, tmp_path: Path) -> None:
    folder = write_clean(tmp_path, "CLN", date(2024, 1, 1), 30)
    summary = ingest(store, folder, "CLN", as_of=datetime(2024, 1, 30, 0, 5, tzinfo=UTC))  # 01-30 still open
    [item] = summary.symbols
    assert item.rejected_rows == 0 and item.rejections == () and not item.noteworthy
    assert "refused rows" not in summary.render() and len(summary.render().splitlines()) == 3
    assert summary.to_dict()["symbols"][0]["rejections"] == []


def test_the_json_summary_only_adds_keys() -> None:
    """`retrain ingest --json` and the handler's result keep every key they had, with the same types."""
    before_symbol = {
        "symbol": str,
        "status": str,
        "appended": int,
        "fetched": int,
        "rejected_rows": int,
        "last_bar": (str, type(None)),
        "stale": bool,
        "error_type": (str, type(None)),
        "error": (str, type(None)),
    }
    before_summary = {
        "as_of": str,
        "interval": str,
        "provider": str,
        "appended": int,
        "rejected_rows": int,
        "failed": list,
        "stale": list,
        "symbols": list,
    }
    from common.data.ingestion import IngestionSummary

    for item in (SymbolIngestion("BTC", "failed", error_type="X", error="y"), SymbolIngestion("ETH", "up_to_date")):
        summary = IngestionSummary(as_of=AS_OF, interval="1d", provider="replay", symbols=(item,)).to_dict()
        for key, kind in before_summary.items():
            assert isinstance(summary[key], kind), key
        for key, kind in before_symbol.items():
            assert isinstance(summary["symbols"][0][key], kind), key
        assert summary["symbols"][0]["rejections"] == [] and summary["symbols"][0]["issues"] == []


# --- the CLI, in-process against moto (RETRAIN_DATA_BUCKET names the bucket: no stack) -------------------------
@pytest.fixture
def cli(s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from retrain.cli import main

    monkeypatch.setenv("RETRAIN_DATA_BUCKET", BUCKET)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_retrain_ingest_lists_every_refused_row_in_text_and_json(cli: Any, planted: Path, tmp_path: Path) -> None:
    common = ("ingest", "--provider", "replay", "--replay-dir", str(planted), "--symbols", SYMBOL, "--as-of")
    code, out, err = cli(*common, "2024-03-01T00:05", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rejected_rows"] == len(REFUSED)
    assert refused_rows(summary["symbols"][0]) == EXPECTED_ROWS
    assert f"{SYMBOL}: created, {DAYS_STORED} bar(s) appended" in err and "9 row(s) refused" in err

    # The same file under another name, as text.
    write_planted(planted, "PLNTB")
    code, out, err = cli(*common[:-3], "--symbols", "PLNTB", "--as-of", "2024-03-01T00:05")
    assert code == 0, err
    assert_text_lists_every_finding(out)
    assert "Traceback" not in out + err


def test_retrain_validate_lists_the_refused_rows_of_a_stored_series(cli: Any, s3: Any, planted: Path) -> None:
    """The stored-series report reads the same way (a series written around the validated append)."""
    body = (planted / "1d" / f"{SYMBOL}.csv").read_bytes().replace(b",abc,", b",100,")  # storage is strict
    s3.put_object(Bucket=BUCKET, Key=ohlcv_key(SYMBOL, "1d"), Body=body)
    code, out, err = cli("validate", "--symbols", SYMBOL, "--as-of", "2024-03-01T00:05")
    assert code == 0, err
    assert f"{SYMBOL} 1d: {len(REFUSED) - 1} row(s) refused:" in out
    for label, kind, reason in REFUSED[1:]:
        assert any(
            line.strip().startswith(label) and kind in line and line.endswith(reason) for line in out.splitlines()
        )
    code, out, _ = cli("validate", "--symbols", SYMBOL, "--as-of", "2024-03-01T00:05", "--json")
    assert refused_rows(json.loads(out)[0]) == EXPECTED_ROWS[1:]


def test_the_lambda_handler_returns_and_logs_each_refused_row(
    s3: Any, planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_ingestion import Context, scheduled_event

    for name, value in {
        "RETRAIN_DATA_BUCKET": BUCKET,
        "RETRAIN_SYMBOLS": SYMBOL,
        "RETRAIN_MARKET_DATA_PROVIDER": "replay",
        "RETRAIN_MARKET_DATA_REPLAY_DIR": str(planted),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "RetrainTest",
        "POWERTOOLS_SERVICE_NAME": "ingest",
    }.items():
        monkeypatch.setenv(name, value)
    import functions.ingest.app as app

    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app.logger, "warning", lambda message, extra: warnings.append((message, extra)))
    result = app.handler(scheduled_event("2024-03-01T00:05:00Z"), Context())
    assert result["failed"] == [] and result["appended"] == DAYS_STORED  # a new series: the whole file
    assert refused_rows(result["symbols"][0]) == EXPECTED_ROWS
    [(message, logged)] = warnings
    assert message == "symbol ingested with findings" and refused_rows(logged) == EXPECTED_ROWS
    assert {issue["kind"] for issue in logged["issues"]} == set(FINDINGS)


# --- 2. a cell that is not a number ---------------------------------------------------------------------------
def test_a_non_numeric_cell_refuses_its_row_only_naming_the_row_and_the_column(
    store: OhlcvStore, tmp_path: Path
) -> None:
    folder = write_clean(tmp_path, "NUM", date(2024, 1, 1), 20)
    path = folder / "1d" / "NUM.csv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 2)[0] + ",12;5," + lines[5].rsplit(",", 1)[1]  # close of 2024-01-05
    path.write_text("\n".join(lines) + "\n")

    summary = ingest(store, folder, "NUM", as_of=FAR)
    [item] = summary.symbols
    assert (item.status, item.appended, item.rejected_rows) == ("created", 19, 1)
    [row] = item.rejections
    assert (row.label, row.kind.value, row.reason) == (
        "2024-01-05 00:00",
        "non_numeric_value",
        "close '12;5' is not a number",
    )
    assert pd.Timestamp("2024-01-05", tz="UTC") not in store.read("NUM", "1d").bars.index


def test_a_stored_series_with_a_non_numeric_cell_is_refused_naming_the_line_and_the_column() -> None:
    payload = f"{HEADER}\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,x1,10\n".encode()
    with pytest.raises(DataFormatError) as info:
        parse_ohlcv_csv(payload, source="s3://b/k")
    assert str(info.value) == "s3://b/k: unparseable values: line 3 (2024-01-02 00:00): close 'x1' is not a number"


def test_an_unparseable_timestamp_fails_the_symbol_naming_the_line(store: OhlcvStore, tmp_path: Path) -> None:
    folder = write_clean(tmp_path, "TME", date(2024, 1, 1), 5)
    path = folder / "1d" / "TME.csv"
    path.write_text(path.read_text().replace("2024-01-03,", "2024-13-03,"))
    [item] = ingest(store, folder, "TME", as_of=FAR).symbols
    assert item.status == "failed" and item.error_type == "DataFormatError"
    assert "line 4: datetime '2024-13-03' is not a timestamp" in (item.error or "")


def test_a_row_without_a_timestamp_is_refused_and_reported_not_dropped(store: OhlcvStore, tmp_path: Path) -> None:
    folder = write_clean(tmp_path, "NOT", date(2024, 1, 1), 5)
    path = folder / "1d" / "NOT.csv"
    path.write_text(path.read_text() + ",1,2,0.5,1.5,10\n")
    [item] = ingest(store, folder, "NOT", as_of=FAR).symbols
    assert (item.appended, item.rejected_rows) == (5, 1)
    assert [(row.time, row.label, row.reason) for row in item.rejections] == [(None, "no time", "no timestamp")]
    # Daily runs after the first one do not serve it again.
    assert ReplayProvider(folder).fetch_bars("NOT", "1d", datetime(2024, 1, 3, tzinfo=UTC), FAR).index.notna().all()


# --- 3. a file named after something that is not a symbol -------------------------------------------------------
def test_a_misnamed_file_is_said_to_be_misnamed_not_missing(tmp_path: Path) -> None:
    folder = write_clean(tmp_path, "ETC-USD", date(2024, 1, 1), 5)
    with pytest.raises(UnknownSymbolError) as info:
        ReplayProvider(folder).fetch_bars("ETC-USD", "1d", datetime(2024, 1, 1, tzinfo=UTC), FAR)
    message = str(info.value)
    assert SYMBOL_RULE in message and "does not exist" not in message
    assert "ETC-USD.csv exists" in message and "rename it (e.g. to ETC.csv)" in message


def test_a_missing_symbol_names_what_the_folder_holds_and_the_misnamed_files(tmp_path: Path) -> None:
    write_clean(tmp_path, "ETC-USD", date(2024, 1, 1), 5)
    write_clean(tmp_path, "ADA", date(2024, 1, 1), 5)
    with pytest.raises(UnknownSymbolError) as info:
        ReplayProvider(tmp_path).fetch_bars("ETC", "1d", datetime(2024, 1, 1, tzinfo=UTC), FAR)
    message = str(info.value)
    assert "ETC.csv does not exist" in message and "holds ADA" in message
    assert f"ETC-USD.csv never read, since {SYMBOL_RULE}" in message


def test_a_path_is_never_read_as_a_symbol(tmp_path: Path) -> None:
    write_clean(tmp_path / "in", "BTC", date(2024, 1, 1), 5)
    with pytest.raises(UnknownSymbolError, match="not a symbol name") as info:
        ReplayProvider(tmp_path / "in" / "1d").fetch_bars("../1d/BTC", "1d", datetime(2024, 1, 1, tzinfo=UTC), FAR)
    assert "exists" not in str(info.value)


def test_retrain_ingest_refuses_a_misnamed_symbol_before_starting_anything(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrain.stack.session as session

    monkeypatch.setattr(session, "connect", lambda *a, **k: pytest.fail("no stack for a refused command"))
    folder = write_clean(tmp_path, "ETC-USD", date(2024, 1, 1), 5)
    code, out, err = cli("ingest", "--provider", "replay", "--replay-dir", str(folder), "--symbols", "ETC-USD")
    assert code == 2 and out == ""
    assert err == f"error: --symbols ETC-USD: {SYMBOL_RULE}\n"


def test_retrain_ingest_refuses_a_replay_dir_that_is_not_a_folder(cli: Any, tmp_path: Path) -> None:
    code, _, err = cli("ingest", "--provider", "replay", "--replay-dir", str(tmp_path / "nope"), "--symbols", "BTC")
    assert code == 2 and "nope: not a folder" in err


# --- 4. a stack started for the command needs no sample data for the ingested symbols -------------------------
@pytest.mark.parametrize(
    ("symbols", "seeded"),
    [("ZQX", None), ("BTC,ZQX", ("BTC",)), ("ETH", ("ETH",))],
)
def test_a_stack_started_for_ingest_seeds_only_symbols_with_sample_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, symbols: str, seeded: tuple[str, ...] | None
) -> None:
    """No stack configured or running: the stack started for the command is configured like `retrain up`
    (its sample data for the symbols that have some), so ZQX from the user's folder is no reason to refuse."""
    import contextlib

    import retrain.stack.session as session
    from retrain.cli import main
    from retrain.stack.config import LocalStackConfig
    from retrain.stack.sample_data import check_symbols

    folder = write_clean(tmp_path, "ZQX", date(2024, 1, 1), 5)
    configs: list[LocalStackConfig] = []

    @contextlib.contextmanager
    def fake_connect(config: LocalStackConfig, progress: Any = None) -> Iterator[None]:
        configs.append(config)
        check_symbols(config.sample_data_dir, config.symbols)  # what start_daemon checks first
        raise SystemExit(0)  # stop here: the test is about the configuration only
        yield

    monkeypatch.setattr(session, "connect", fake_connect)
    with pytest.raises(SystemExit):
        main(["ingest", "--provider", "replay", "--replay-dir", str(folder), "--symbols", symbols])
    [config] = configs
    assert config.symbols == (seeded or LocalStackConfig().symbols)
    assert not config.with_mlflow


# --- 5. the whole file on a first ingest; back-fill of older bars ----------------------------------------------
YEARS = 1500  # daily bars: more than the vendor default of 1000
END = datetime(2024, 2, 9, tzinfo=UTC)  # the last bar (2020-01-01 + 1499 days) has just closed


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return write_clean(tmp_path / "hist", "OLD", date(2020, 1, 1), YEARS)


class VendorLike:
    """The replay folder behind a vendor's contract (no complete history): a new series gets 1000 bars."""

    name = "vendor"
    complete_history = False

    def __init__(self, folder: Path) -> None:
        self.replay = ReplayProvider(folder)

    def fetch_bars(self, *args: Any) -> pd.DataFrame:
        return self.replay.fetch_bars(*args)


def test_a_first_ingest_from_a_replay_folder_takes_the_whole_file(store: OhlcvStore, history: Path) -> None:
    [item] = ingest(store, history, "OLD", as_of=FAR).symbols
    assert (item.status, item.appended, item.fetched) == ("created", YEARS, YEARS)
    stored = store.read("OLD", "1d").bars
    assert stored.index.min() == pd.Timestamp("2020-01-01", tz="UTC") and len(stored) == YEARS
    assert item.to_dict()["first_bar"] == "2020-01-01T00:00:00+00:00"


def test_a_vendor_or_an_explicit_setting_still_limits_a_first_ingest(store: OhlcvStore, history: Path) -> None:
    [vendor] = ingest_symbols(store, VendorLike(history), ["OLD"], interval="1d", as_of=END).symbols
    assert vendor.appended == DEFAULT_BACKFILL_BARS == 1000
    settings = load_settings(data_bucket=BUCKET, ingest_backfill_bars=200, symbols=("OLD",))
    store.objects.client.delete_object(Bucket=BUCKET, Key=ohlcv_key("OLD", "1d"))
    summary = run_ingestion(settings, as_of=END, store=store, provider=ReplayProvider(history))
    assert summary.symbols[0].appended == 200


def test_backfill_adds_the_older_bars_to_a_stored_series_and_is_idempotent(
    store: OhlcvStore, s3: Any, history: Path
) -> None:
    ingest_symbols(store, VendorLike(history), ["OLD"], interval="1d", as_of=END)  # the last 1000 bars only
    before = store.read("OLD", "1d")

    summary = ingest(store, history, "OLD", as_of=FAR, backfill=True)
    [item] = summary.symbols
    assert (item.status, item.appended, item.rejected_rows) == ("appended", YEARS - 1000, 0)
    assert item.to_dict()["backfilled"] == YEARS - 1000 and item.to_dict()["conflicts"] == 0
    assert summary.to_dict()["backfill"] is True and "(back-fill)" in summary.render()
    after = store.read("OLD", "1d").bars
    expected = parse_ohlcv_csv((history / "1d" / "OLD.csv").read_bytes())
    pd.testing.assert_frame_equal(after, expected, check_freq=False)
    pd.testing.assert_frame_equal(after.loc[before.bars.index], before.bars)  # no stored bar changed
    written = versions(s3, "OLD")

    again = ingest(store, history, "OLD", as_of=FAR, backfill=True)
    assert (again.symbols[0].status, again.appended, again.rejected_rows) == ("unchanged", 0, 0)
    assert versions(s3, "OLD") == written  # nothing written at all


def test_backfill_refuses_and_reports_an_older_bar_that_differs_from_the_stored_one(
    store: OhlcvStore, s3: Any, tmp_path: Path
) -> None:
    stored_part = write_clean(tmp_path / "stored", "DIF", date(2024, 1, 11), 10)  # 01-11..01-20
    ingest(store, stored_part, "DIF", as_of=FAR)
    before = store.read("DIF", "1d")
    # The user's full file: 01-01..01-20; 01-15 disagrees with the stored bar, the other overlaps agree.
    full = write_clean(tmp_path / "full", "DIF", date(2024, 1, 1), 20)
    path = full / "1d" / "DIF.csv"
    text = path.read_text().splitlines()
    stored_close = before.bars.loc["2024-01-15", "close"].item()
    day = text.index(next(line for line in text if line.startswith("2024-01-15")))
    stored_volume = before.bars.loc["2024-01-15", "volume"].item()
    text[day] = f"2024-01-15,100,110,90,{stored_close + 1.5:g},{stored_volume:g}"
    for n, line in enumerate(text):  # the other overlapping days: exactly the stored values
        if n and line[:10] >= "2024-01-11" and n != day:
            stamp = pd.Timestamp(line[:10], tz="UTC")
            bar = before.bars.loc[stamp]
            text[n] = f"{line[:10]},{bar.open:g},{bar.high:g},{bar.low:g},{bar.close:g},{bar.volume:g}"
    path.write_text("\n".join(text) + "\n")

    summary = ingest(store, full, "DIF", as_of=FAR, backfill=True)
    [item] = summary.symbols
    assert (item.appended, item.rejected_rows) == (10, 1)
    [row] = item.to_dict()["rejections"]
    assert row == {
        "time": "2024-01-15T00:00:00+00:00",
        "kind": "conflicts_with_stored",
        "reason": f"differs from the stored bar, which is kept: close {stored_close + 1.5:g} vs {stored_close:g}",
    }
    assert item.to_dict()["conflicts"] == 1
    assert "conflicts_with_stored" in summary.render() and "2024-01-15 00:00" in summary.render()
    after = store.read("DIF", "1d").bars
    assert after.loc["2024-01-15", "close"].item() == stored_close  # never rewritten
    pd.testing.assert_frame_equal(after.loc[before.bars.index], before.bars)

    written = versions(s3, "DIF")
    again = ingest(store, full, "DIF", as_of=FAR, backfill=True).symbols[0]
    assert (again.status, again.appended, again.rejected_rows) == ("unchanged", 0, 1)  # still reported
    assert versions(s3, "DIF") == written


def test_backfill_validates_the_older_bars_like_any_others(store: OhlcvStore, tmp_path: Path) -> None:
    ingest(store, write_clean(tmp_path / "new", SYMBOL, date(2024, 3, 1), 10), as_of=FAR)
    planted = write_planted(tmp_path / "old")  # 2024-01-01..03-01: the 03-01 bar is stored already
    summary = ingest(store, planted, as_of=FAR, backfill=True)
    [item] = summary.symbols
    assert refused_rows(item.to_dict())[: len(REFUSED)] == EXPECTED_ROWS
    assert item.appended == DAYS_STORED  # everything valid before 03-01; 03-01 itself is stored (it differs)
    assert [row.kind.value for row in item.rejections[len(REFUSED) :]] == ["conflicts_with_stored"]


def test_backfill_since_a_date_fetches_from_that_date(store: OhlcvStore, history: Path) -> None:
    ingest_symbols(store, VendorLike(history), ["OLD"], interval="1d", as_of=END)
    [item] = ingest(store, history, "OLD", as_of=FAR, backfill=True, since=datetime(2021, 1, 1, tzinfo=UTC)).symbols
    assert store.read("OLD", "1d").bars.index.min() == pd.Timestamp("2021-01-01", tz="UTC")
    assert item.first_bar == datetime(2021, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("policy", ["report", "fill", "reject"])
def test_backfill_that_leaves_a_gap_before_the_stored_bars_follows_the_gap_policy(
    store: OhlcvStore, tmp_path: Path, policy: str
) -> None:
    ingest(store, write_clean(tmp_path / "new", "GAP", date(2024, 1, 11), 10), "GAP", as_of=FAR)
    older = write_clean(tmp_path / "old", "GAP", date(2024, 1, 1), 7)  # 01-01..01-07: 01-08..10 missing
    before = store.read("GAP", "1d").body
    [item] = ingest(store, older, "GAP", as_of=FAR, backfill=True, gap_policy=policy).symbols
    if policy == "reject":
        assert item.status == "failed" and item.error_type == "DataValidationError"
        assert "back-filling up to 2024-01-07 00:00 would leave 3 missing bar(s) before the stored 2024-01-11" in (
            item.error or ""
        )
        assert store.read("GAP", "1d").body == before
        return
    assert item.to_dict()["boundary_gap"] == 3
    stored = store.read("GAP", "1d").bars
    if policy == "fill":
        assert item.appended == 10 and stored.loc["2024-01-08":"2024-01-10", "volume"].eq(0).all()
        assert stored.loc["2024-01-09", "close"].item() == stored.loc["2024-01-07", "close"].item()
    else:
        assert item.appended == 7 and len(stored) == 17


def test_retrain_ingest_backfill_in_text_and_json(cli: Any, history: Path) -> None:
    base = ("ingest", "--provider", "replay", "--replay-dir", str(history), "--symbols", "OLD", "--as-of", "2030-01-01")
    code, out, err = cli(*base, "--since", "2023-01-01")
    assert code == 2 and "--since goes with --backfill" in err

    code, out, err = cli(*base, "--backfill", "--since", "2023-01-01", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["backfill"] is True and first["symbols"][0]["first_bar"].startswith("2023-01-01")

    code, out, err = cli(*base, "--backfill")
    assert code == 0, err
    assert "OLD     appended" in out and "(back-fill)" in out
    assert "older than the newest stored bar" in err
    code, out, err = cli(*base, "--backfill", "--json")
    assert json.loads(out)["symbols"][0]["status"] == "unchanged"
