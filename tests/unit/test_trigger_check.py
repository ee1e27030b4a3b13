"""Pieces of the daily check that need no stack: the age clock, the execution name, the summary."""

from __future__ import annotations

from datetime import UTC, datetime

from common.promotion import decode_tags, encode_tags
from common.registry import VersionInfo
from common.trigger_check import CheckSummary, _trained_at, execution_name
from common.triggers import Decision, TriggerResult, schedule_trigger

WALL_CLOCK = datetime(2026, 11, 21, tzinfo=UTC)


def _version(**tags: object) -> VersionInfo:
    return VersionInfo("BTC_uptrend_model", "3", "run", encode_tags(tags), (), created_at=WALL_CLOCK)


def test_age_is_measured_on_the_data_clock_not_the_registry_wall_clock() -> None:
    tagged = _version(trained_as_of="2025-02-10T00:00:00+00:00", data_range={"last": "2025-01-30T00:00:00+00:00"})
    assert _trained_at(tagged, decode_tags(tagged.tags)) == datetime(2025, 2, 10, tzinfo=UTC)
    older = _version(data_range={"last": "2025-01-30T00:00:00+00:00"})  # versions from before the tag existed
    assert _trained_at(older, decode_tags(older.tags)) == datetime(2025, 1, 30, tzinfo=UTC)
    bare = _version()
    assert _trained_at(bare, {}) == WALL_CLOCK
    replay = datetime(2025, 2, 21, tzinfo=UTC)
    assert schedule_trigger(_trained_at(tagged, decode_tags(tagged.tags)), replay, 7).status == "fired"


def test_one_execution_name_per_day() -> None:
    assert execution_name(datetime(2025, 2, 21, 0, 0, tzinfo=UTC)) == "trigger-2025-02-21"
    assert execution_name(datetime(2025, 2, 21, 23, 59, tzinfo=UTC)) == "trigger-2025-02-21"


def test_summary_lists_every_model_and_what_started() -> None:
    as_of = datetime(2025, 2, 21, tzinfo=UTC)
    keep = Decision(
        "BTC", "uptrend", "2025-02-21", as_of.isoformat(), "3", (TriggerResult("schedule", "ok", "", 2.0, 7),)
    )
    train = Decision("ETH", "uptrend", "2025-02-21", as_of.isoformat(), None, (schedule_trigger(None, as_of, 7),))
    summary = CheckSummary(as_of=as_of, decisions=[keep, train], execution="trigger-2025-02-21", started=False)
    summary.errors["SOL uptrend"] = "DataNotFoundError: no 1d bars for SOL"
    text = summary.render()
    assert "BTC uptrend" in text and "ETH uptrend" in text and "no_model" in text
    assert "already ran today: nothing new started" in text and "error: DataNotFoundError" in text
    assert summary.to_dict()["retrain"] == ["ETH uptrend"]


def test_a_champion_trained_as_of_the_check_or_later_is_not_checked_again() -> None:
    """Re-running a day: what was decided then, with the champion of then, stands."""
    import pytest

    from common.trigger_check import AlreadyDecided, check_model

    class Registry:
        def version_by_alias(self, name: str, alias: str) -> VersionInfo:
            return _version(trained_as_of="2025-02-10T00:00:00+00:00")

        def last_training(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing is read once the champion postdates the check")

    for day in (datetime(2025, 2, 10, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC)):
        with pytest.raises(AlreadyDecided, match="v3 was trained as of 2025-02-10 00:00"):
            check_model(
                None,
                Registry(),
                None,
                None,
                symbol="BTC",
                trend="uptrend",
                as_of=day,
                interval="1d",  # type: ignore[arg-type]
            )
    summary = CheckSummary(as_of=datetime(2025, 2, 3, tzinfo=UTC), skipped={"BTC uptrend": "champion v3 was ..."})
    assert "BTC uptrend" in summary.render() and "not checked again" in summary.render()
    assert summary.to_dict()["skipped"] == {"BTC uptrend": "champion v3 was ..."}
