"""Retraining policies: named configurations of the real settings, compared by the backtest.

A policy is never special code: it is a set of setting overrides (``RETRAIN_TRIGGERS``,
``RETRAIN_MAX_MODEL_AGE_DAYS``, ``RETRAIN_PROMOTION_RULE``, ...) applied to the configured settings, and the
backtest then runs the live loop's own decisions under it. What a policy name means:

- ``default``: the configured settings as they are (what the deployed loop does);
- ``never``: train once; a model without a champion is tried again every ``RETRAIN_NO_MODEL_RETRY_DAYS``
  until one passes the gate, and then never retrained;
- ``every-Nd``: the schedule trigger alone, retraining a champion older than N days (``every-30d``);
- ``schedule``, ``performance``, ``drift``: that trigger alone, with its configured thresholds;
- ``NAME+always``: NAME with every challenger that passes the gate replacing the champion
  (``RETRAIN_PROMOTION_RULE=always``) instead of only one that is not worse (``default+always``);
- ``NAME+seed``: NAME with the seed system's decision rules (the original gate on the winner's own
  walk-forward score, the windowed performance rule, "challenger >= champion", no suspension);
- ``NAME+evidence``: NAME with decisions on evidence (the gate on the selection-aware estimate, live
  monitoring since going live, promotion only on a difference larger than noise, suspension);
- ``NAME+edge``: NAME with the edge gate (the strategy must beat not trading and the naive baseline);
- ``NAME@field=value@...``: NAME with any other setting overridden (``default@gate_rule=edge``), each
  ``field`` a setting's name (``RETRAIN_<FIELD>`` in lower case), validated as the environment would be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from common.core.errors import ConfigurationError
from common.core.settings import TRIGGER_NAMES, Settings

DEFAULT_POLICY = "default"
_EVERY = re.compile(r"^every-(\d{1,4})d$")
#: Rule sets a policy name can add with ``+NAME`` (applied in the order given).
MODIFIERS: dict[str, tuple[str, dict[str, Any]]] = {
    "always": ("every challenger that passes the gate is promoted", {"promotion_rule": "always"}),
    "seed": (
        "the seed system's rules: the original gate on the winner's own score, the windowed performance rule, "
        "challenger >= champion, no suspension",
        {
            "gate_rule": "original",
            "gate_use_honest": False,
            "perf_rule": "window",
            "promotion_rule": "not_worse",
            "suspend_on_evidence": False,
        },
    ),
    "evidence": (
        "decisions on evidence: the gate judges the selection-aware estimate, live monitoring since going live, "
        "promotion only on a difference larger than noise, suspension of a champion worse than not trading",
        {"gate_use_honest": True, "perf_rule": "evidence", "promotion_rule": "evidence", "suspend_on_evidence": True},
    ),
    "edge": (
        "the edge gate: the strategy beats not trading and the naive baseline, by lower bounds",
        {"gate_rule": "edge"},
    ),
}
# Settings a policy may not override: where data lives and what the pool is belong to the run, not the policy.
_NOT_POLICY = {"data_bucket", "mlflow_tracking_uri", "state_machine_arn", "symbols", "interval", "as_of"}


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    overrides: dict[str, Any]

    def settings(self, base: Settings) -> Settings:
        """``base`` with this policy's overrides, validated as the environment would be."""
        if not self.overrides:
            return base
        values = {**base.model_dump(), **self.overrides}
        return Settings.model_validate(values)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "overrides": _jsonable(self.overrides)}


def _jsonable(overrides: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in overrides.items()}


def parse_policy(name: str) -> Policy:
    """The policy a name stands for (module docstring); :class:`ConfigurationError` for anything else."""
    text = name.strip()
    head, *assignments = text.split("@")
    base, *modifiers = head.split("+")
    overrides: dict[str, Any]
    if base == DEFAULT_POLICY:
        description, overrides = "the configured settings", {}
    elif base == "never":
        description, overrides = "train once; retry only while no model passes the gate", {"triggers": ()}
    elif base in TRIGGER_NAMES:
        description, overrides = f"the {base} trigger alone", {"triggers": (base,)}
    elif match := _EVERY.match(base):
        days = int(match.group(1))
        if days < 1:
            raise ConfigurationError(f"policy {name!r}: the period must be at least 1 day")
        description = f"retrain every {days} days (the schedule trigger alone)"
        overrides = {"triggers": ("schedule",), "max_model_age_days": days}
    else:
        raise ConfigurationError(
            f"unknown policy {name!r}: use default, never, every-Nd (e.g. every-30d), "
            f"{', '.join(TRIGGER_NAMES)}, each optionally with +{', +'.join(MODIFIERS)} and @field=value "
            "overrides (e.g. default+always, default+evidence+edge, default@gate_rule=edge)"
        )
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise ConfigurationError(f"policy {name!r}: unknown +{modifier}; use +{', +'.join(MODIFIERS)}")
        text_added, values = MODIFIERS[modifier]
        description += f"; {text_added}"
        overrides = {**overrides, **values}
    for assignment in assignments:
        field, sep, value = assignment.partition("=")
        if not sep or field not in Settings.model_fields or field in _NOT_POLICY:
            raise ConfigurationError(
                f"policy {name!r}: {assignment!r} is not field=value with field a decision setting "
                "(e.g. gate_rule=edge, promotion_rule=evidence, max_model_age_days=14)"
            )
        overrides = {**overrides, field: value}
        description += f"; {field}={value}"
    return Policy(text, description, overrides)


def parse_policies(text: str, baseline: str = DEFAULT_POLICY) -> list[Policy]:
    """Comma-separated policy names, each once; the ``baseline`` policy (every difference is reported against
    it, ``default`` unless said otherwise) is always among them."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigurationError("--policies is empty: name at least one policy (e.g. never,every-30d,default)")
    policies = [parse_policy(name) for name in dict.fromkeys(names)]
    if baseline not in {p.name for p in policies}:
        policies.append(parse_policy(baseline))
    return policies
