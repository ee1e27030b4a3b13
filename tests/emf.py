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


def emitted_points(stdout: str) -> list[tuple[str, dict[str, str], float]]:
    """Every metric value in the EMF lines of ``stdout`` with its dimensions: (name, {dimension: value}, value)."""
    points = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            directive = document["_aws"]["CloudWatchMetrics"][0]
            dimensions = {name: str(document[name]) for names in directive["Dimensions"] for name in names}
            for definition in directive["Metrics"]:
                value = document[definition["Name"]]
                points.append((definition["Name"], dimensions, value[0] if isinstance(value, list) else value))
    return points
