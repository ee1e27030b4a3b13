"""The NotifyOperator Lambda on moto (S3 + Secrets Manager, in-process) with Telegram behind
httpx.MockTransport: the outbox record, the exact sendMessage request, and a failing channel that is
reported without failing the invocation."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest

from tests.conftest import versioned_bucket

BUCKET = "retrain-notify-test"
SECRET = "retrain/telegram-test"
TOKEN = "123:abc"
CHAT = "-100200300"
OUTBOX_KEY = "notifications/2025-02-20/run-7.json"

EVENT: dict[str, Any] = {
    "run_id": "run-7",
    "as_of": "2025-02-20T00:05:00Z",
    "results": [
        {
            "symbol": "BTC",
            "trend": "uptrend",
            "status": "promoted",
            "reason": "drift",
            "version": "16",
            "previous_version": "15",
            "champion_version": "16",
            "classifier": "xgboost",
            "metrics": {"overall_score": 0.6123, "accuracy": 0.5671},
            "why": "overall 0.61 > champion 0.58 on the same 300 bars",
            "duration_s": 41.2,
        },
        {
            "symbol": "ETH",
            "trend": "downtrend",
            "status": "rejected",
            "version": 17,
            "previous_version": 16,
            "champion_version": 16,
            "why": "overall 0.55 < champion 0.61 on the same 300 bars",
        },
        {
            "symbol": "SOL",
            "trend": "uptrend",
            "status": "failed",
            "failed_step": "TrainModel",
            "error": "DataNotFoundError",
            "cause": json.dumps(
                {
                    "errorMessage": "no bars for SOL",
                    "errorType": "DataNotFoundError",
                    "stackTrace": ['  File "/var/task/app.py", line 1'],
                }
            ),
        },
    ],
}

EXPECTED_TEXT = "\n".join(
    [
        "Retraining run run-7: 1 promoted, 1 rejected, 1 failed",
        "BTC uptrend: v15 -> v16, overall 0.61, accuracy 0.567 [trigger: drift]",
        "ETH downtrend: challenger v17 rejected (overall 0.55 < champion 0.61 on the same 300 bars); v16 stays",
        "SOL uptrend: training failed in TrainModel: DataNotFoundError: no bars for SOL",
    ]
)


class Context:
    function_name = "retrain-notify"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:retrain-notify"
    aws_request_id = "test-request"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRAIN_DATA_BUCKET": BUCKET,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "RetrainTest",
        "POWERTOOLS_SERVICE_NAME": "notify",
    }.items():
        monkeypatch.setenv(name, value)
    from aws_lambda_powertools.utilities import parameters

    from common.core.settings import get_settings

    parameters.clear_caches()  # powertools caches secrets (and its client) per process
    get_settings.cache_clear()
    with versioned_bucket(BUCKET) as s3:
        yield s3
    parameters.clear_caches()


@pytest.fixture
def telegram(monkeypatch: pytest.MonkeyPatch, aws: Any) -> Callable[..., list[httpx.Request]]:
    """Configures the telegram channel; returns a function that installs Telegram's answers."""
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps({"token": TOKEN}))
    monkeypatch.setenv("RETRAIN_NOTIFY_CHANNELS", "outbox,telegram")
    monkeypatch.setenv("RETRAIN_TELEGRAM_SECRET_NAME", SECRET)
    monkeypatch.setenv("RETRAIN_TELEGRAM_CHAT_ID", CHAT)
    from common.core.settings import get_settings

    get_settings.cache_clear()

    def answer_with(*responses: httpx.Response) -> list[httpx.Request]:
        requests: list[httpx.Request] = []
        queued = list(responses)

        def respond(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return queued.pop(0)

        import functions.notify.app as app

        monkeypatch.setattr(app, "telegram_client", lambda: httpx.Client(transport=httpx.MockTransport(respond)))
        return requests

    return answer_with


def _outbox(s3: Any) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=OUTBOX_KEY)["Body"].read())


def test_outbox_gets_the_run_summary(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from functions.notify.app import handler

    result = handler(EVENT, Context())

    assert result == {
        "subject": "Retraining run run-7: 1 promoted, 1 rejected, 1 failed",
        "text": EXPECTED_TEXT,
        "delivered_to": [f"s3://{BUCKET}/{OUTBOX_KEY}"],
        "failed": [],
    }
    document = _outbox(aws)
    assert document["text"] == EXPECTED_TEXT
    assert document["subject"] == result["subject"]
    assert [o["status"] for o in document["outcomes"]] == ["promoted", "rejected", "failed"]
    assert document["outcomes"][1]["version"] == "17"
    metrics = _metrics(capsys.readouterr().out)
    assert (metrics["NotificationsSent"], metrics["NotificationsFailed"]) == (1, 0)


def test_telegram_gets_the_exact_send_message_request(telegram: Callable[..., list[httpx.Request]], aws: Any) -> None:
    requests = telegram(httpx.Response(200, json={"ok": True, "result": {"message_id": 11}}))
    from functions.notify.app import handler

    result = handler(EVENT, Context())

    [request] = requests
    assert request.method == "POST"
    assert request.url.host == "api.telegram.org"
    assert request.url.path == f"/bot{TOKEN}/sendMessage"
    assert json.loads(request.content) == {"chat_id": CHAT, "text": EXPECTED_TEXT, "disable_web_page_preview": True}
    assert result["delivered_to"] == [f"s3://{BUCKET}/{OUTBOX_KEY}", f"telegram:{CHAT}/11"]
    assert result["failed"] == []
    assert _outbox(aws)["text"] == EXPECTED_TEXT


def test_telegram_failure_is_reported_and_the_outbox_still_written(
    telegram: Callable[..., list[httpx.Request]],
    aws: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests = telegram(
        httpx.Response(500, json={"ok": False, "error_code": 500, "description": "Internal Server Error"})
    )
    import functions.notify.app as app

    logs = io.StringIO()
    monkeypatch.setattr(app.logger.registered_handler, "stream", logs)  # bound to the stdout of import time

    result = app.handler(EVENT, Context())

    assert len(requests) == 1
    assert result["delivered_to"] == [f"s3://{BUCKET}/{OUTBOX_KEY}"]
    assert result["failed"] == [
        {"channel": "telegram", "error": "Telegram sendMessage failed (HTTP 500): Internal Server Error"}
    ]
    assert _outbox(aws)["text"] == EXPECTED_TEXT
    records = [json.loads(line) for line in logs.getvalue().splitlines()]
    [warning] = [r for r in records if r["level"] == "WARNING"]
    assert warning["message"] == "notification channel failed" and warning["channel"] == "telegram"
    assert warning["run_id"] == "run-7" and "HTTP 500" in warning["error"]
    out = capsys.readouterr().out
    assert TOKEN not in logs.getvalue() + out  # neither the logs nor the metrics carry the bot token
    metrics = _metrics(out)
    assert (metrics["NotificationsSent"], metrics["NotificationsFailed"]) == (1, 1)


def test_a_retried_notification_sends_only_what_is_missing(
    telegram: Callable[..., list[httpx.Request]], aws: Any
) -> None:
    """NotifyOperator invoked again for the same run (Step Functions' retry, a redrive): chunk 2 of 3 failed
    once, so the retry sends chunks 2 and 3 only, and a second full retry sends nothing."""
    from common.notify.notification import split_message
    from functions.notify.app import handler

    rejected = {"trend": "uptrend", "status": "rejected", "version": 17, "champion_version": 16, "why": "x" * 60}
    event = {**EVENT, "results": [{**rejected, "symbol": f"S{i:03d}"} for i in range(80)]}

    def ok(message_id: int) -> httpx.Response:
        return httpx.Response(200, json={"ok": True, "result": {"message_id": message_id}})

    first = telegram(ok(1), httpx.Response(500, json={"ok": False, "description": "Internal Server Error"}))
    failed = handler(event, Context())
    retry = telegram(ok(2), ok(3))
    retried = handler(event, Context())
    again = telegram()
    last = handler(event, Context())

    chunks = split_message(failed["text"])
    assert len(chunks) == 3
    assert [json.loads(r.content)["text"] for r in first] == chunks[:2]
    assert [r["channel"] for r in failed["failed"]] == ["telegram"]
    assert [json.loads(r.content)["text"] for r in retry] == chunks[1:]
    assert retried["failed"] == [] and retried["delivered_to"][1] == f"telegram:{CHAT}/1,2,3"
    assert again == [] and last["delivered_to"] == retried["delivered_to"]
    markers = aws.list_objects_v2(Bucket=BUCKET, Prefix="runs/run-7/notify/telegram/")["Contents"]
    assert [m["Key"].rsplit("/", 1)[1] for m in markers] == ["chunk-001.json", "chunk-002.json", "chunk-003.json"]


def test_missing_secret_is_a_failed_channel(monkeypatch: pytest.MonkeyPatch, aws: Any) -> None:
    monkeypatch.setenv("RETRAIN_NOTIFY_CHANNELS", "outbox,telegram")
    monkeypatch.setenv("RETRAIN_TELEGRAM_SECRET_NAME", "retrain/does-not-exist")
    monkeypatch.setenv("RETRAIN_TELEGRAM_CHAT_ID", CHAT)
    from common.core.settings import get_settings

    get_settings.cache_clear()
    from functions.notify.app import handler

    result = handler(EVENT, Context())

    assert result["delivered_to"] == [f"s3://{BUCKET}/{OUTBOX_KEY}"]
    [failure] = result["failed"]
    assert failure["channel"] == "telegram"
    assert "cannot read secret 'retrain/does-not-exist'" in failure["error"]


def test_malformed_event_is_rejected(aws: Any) -> None:
    from pydantic import ValidationError

    from functions.notify.app import handler

    with pytest.raises(ValidationError):
        handler({**EVENT, "results": [{"symbol": "BTC", "trend": "uptrend", "status": "exploded"}]}, Context())


def _metrics(stdout: str) -> dict[str, float]:
    """Metric values from the EMF lines powertools prints."""
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        with_metrics = line.startswith("{") and '"_aws"' in line
        if with_metrics:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = document[definition["Name"]]
                values[definition["Name"]] = value[0] if isinstance(value, list) else value
    return values
