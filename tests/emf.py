"""Metric values from the CloudWatch embedded-metric-format lines powertools prints (handler tests)."""

from __future__ import annotations

import json


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Each metric's value from the EMF JSON lines in ``stdout`` (the last line wins)."""
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = document[definition["Name"]]
                values[definition["Name"]] = value[0] if isinstance(value, list) else value
    return values
