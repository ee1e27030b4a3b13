"""Typed registry tags and the champion/challenger decision."""

from __future__ import annotations

import json

import pytest

from common.registry.promotion import VERSION_TAGS, decide_promotion, decode_tags, encode_tags


def test_tags_round_trip_with_their_types() -> None:
    values = {
        "symbol": "BTC",
        "prediction_window": 10,
        "target_pct": 0.05,
        "metrics": {"overall_score": 0.61, "accuracy": 0.567},
        "feature_names": ["7_day_ADX", "AroonDown"],
        "data_range": {"first": "2014-10-20T00:00:00+00:00", "last": "2025-02-09T00:00:00+00:00"},
    }
    tags = encode_tags(values)
    assert all(isinstance(v, str) for v in tags.values())
    assert decode_tags(tags) == values
    assert isinstance(decode_tags(tags)["prediction_window"], int)


def test_a_tag_edited_by_hand_stays_a_string_and_unknown_tags_are_ignored() -> None:
    decoded = decode_tags({"classifier": "lightgbm", "mlflow.note": "x", "symbol": '"ETH"'})
    assert decoded == {"classifier": "lightgbm", "symbol": "ETH"}
    assert set(decoded) <= set(VERSION_TAGS)


def test_non_finite_values_are_refused_rather_than_written_as_nan() -> None:
    with pytest.raises(ValueError):
        encode_tags({"metrics": {"sharpe": float("nan")}})


def _decide(**overrides: object):
    arguments: dict[str, object] = {
        "challenger_version": "2",
        "champion_version": "1",
        "challenger_cv_score": 0.62,
        "champion_recorded_score": 0.60,
        "same_bars_scores": None,
        "min_bars": 30,
    }
    arguments.update(overrides)
    return decide_promotion(**arguments)  # type: ignore[arg-type]


def test_first_model_becomes_champion() -> None:
    decision = _decide(champion_version=None, champion_recorded_score=None)
    assert decision.promote and decision.comparison == "no_champion"


def test_same_bars_comparison_wins_when_enough_bars_are_unseen_by_the_champion() -> None:
    decision = _decide(same_bars_scores=(0.55, 0.61, 300))
    assert not decision.promote and decision.comparison == "same_bars"
    assert decision.why == "overall 0.55 < champion 0.61 on the same 300 bars"
    promoted = _decide(same_bars_scores=(0.61, 0.61, 300))  # not worse is enough
    assert promoted.promote and promoted.bars == 300


def test_too_few_unseen_bars_fall_back_to_the_recorded_walk_forward_scores() -> None:
    decision = _decide(same_bars_scores=(0.9, 0.1, 7), challenger_cv_score=0.58, champion_recorded_score=0.60)
    assert not decision.promote and decision.comparison == "recorded_score"
    assert "7 unseen bars < 30" in decision.why
    assert _decide(same_bars_scores=(0.1, 0.9, 7)).promote  # 0.62 >= 0.60 recorded


def test_re_running_on_the_current_champion_changes_nothing() -> None:
    decision = _decide(champion_version="2")
    assert decision.promote and decision.comparison == "same_version"


def test_a_champion_without_a_recorded_score_is_replaced_by_a_gated_challenger() -> None:
    decision = _decide(champion_recorded_score=None)
    assert decision.promote and "no recorded" in decision.why


def test_decision_serialises() -> None:
    assert json.loads(json.dumps(_decide(same_bars_scores=(0.7, 0.6, 40)).to_dict()))["bars"] == 40
