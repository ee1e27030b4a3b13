"""``retrain status``: what runs where, and what the bucket, state machine and registry hold."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import httpx

from retrain.stack.session import Connection


def collect_status(connection: Connection) -> dict[str, Any]:
    report: dict[str, Any] = {"running": True, "source": connection.source, "bucket": connection.bucket}
    if connection.stack is not None:
        report["aws_endpoint"] = connection.stack.aws_endpoint
        report["pid"] = connection.stack.pid
        report["started_at"] = connection.stack.started_at
        report["state_dir"] = connection.stack.state_dir
    s3 = boto3.client("s3")
    prefixes: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=connection.bucket):
        for item in page.get("Contents", []):
            prefixes[item["Key"].split("/", 1)[0] + "/"] += 1
    report["objects"] = dict(sorted(prefixes.items()))
    if connection.state_machine_arn:
        sfn = boto3.client("stepfunctions")
        executions = sfn.list_executions(stateMachineArn=connection.state_machine_arn, maxResults=100)["executions"]
        report["state_machine"] = {
            "arn": connection.state_machine_arn,
            "executions": dict(Counter(e["status"] for e in executions)),
            "latest": [
                {"name": e["name"], "status": e["status"], "started": e["startDate"].isoformat()}
                for e in sorted(executions, key=lambda e: e["startDate"], reverse=True)[:5]
            ],
        }
    report["functions"] = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    report["mlflow"] = _mlflow_status(connection.mlflow_uri)
    return report


def _mlflow_status(uri: str | None) -> dict[str, Any]:
    if not uri or not uri.startswith("http"):
        return {"uri": uri, "healthy": None}
    try:
        healthy = httpx.get(f"{uri}/health", timeout=5).status_code == 200
        models = httpx.get(f"{uri}/api/2.0/mlflow/registered-models/search", params={"max_results": 1000}, timeout=10)
        count = len(models.json().get("registered_models", [])) if models.status_code == 200 else None
    except httpx.HTTPError as exc:
        return {"uri": uri, "healthy": False, "error": str(exc)}
    return {"uri": uri, "healthy": healthy, "registered_models": count}


def render_status(report: dict[str, Any]) -> str:
    if not report.get("running"):
        return report.get("message", "not running")
    lines = [f"source:     {report['source']}"]
    if "pid" in report:
        lines.append(f"stack:      pid {report['pid']}, since {report['started_at']}, state in {report['state_dir']}")
        lines.append(f"AWS:        {report['aws_endpoint']}")
    lines.append(f"bucket:     {report['bucket']}")
    for prefix, count in report["objects"].items():
        lines.append(f"  {prefix:<16} {count} objects")
    lines.append(f"functions:  {', '.join(report['functions']) or '-'}")
    machine = report.get("state_machine")
    if machine:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in machine["executions"].items()) or "no executions"
        lines.append(f"training:   {machine['arn']} ({counts})")
        for execution in machine["latest"]:
            lines.append(f"  {execution['started'][:19]}  {execution['status']:<9} {execution['name']}")
    mlflow = report["mlflow"]
    health = {True: "healthy", False: "unreachable", None: "not checked"}[mlflow.get("healthy")]
    models = mlflow.get("registered_models")
    lines.append(
        f"MLflow:     {mlflow.get('uri')} ({health}" + (f", {models} registered models)" if models is not None else ")")
    )
    return "\n".join(lines)
