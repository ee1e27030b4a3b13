"""common.notify.notification: the run summary text, Lambda error extraction, and delivery (S3 outbox, console,
Telegram through httpx.MockTransport, the channel set from settings, failure isolation)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from common.core.errors import ConfigurationError
from common.core.keys import notification_key
from common.core.settings import Settings, load_settings
from common.notify.notification import (
    TELEGRAM_MAX_CHARS,
    DeliveryReport,
    ModelOutcome,
    Notification,
    NotificationError,
    OutboxNotifier,
    TelegramNotifier,
    deliver,
    notifiers_from_settings,
    outcome_line,
    split_message,
    summarize_run,
)

CREATED_AT = datetime(2025, 2, 20, 0, 5, tzinfo=UTC)

LAMBDA_ERROR_CAUSE = json.dumps(
    {
        "errorMessage": "s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv does not exist",
        "errorType": "DataNotFoundError",
        "requestId": "b7c1d3c4-0000-4000-8000-000000000000",
        "stackTrace": ['  File "/var/task/app.py", line 42, in handler\n    payload = store.get(key)\n'],
    }
)


def _outcomes() -> list[ModelOutcome]:
    return [
        ModelOutcome(
            symbol="BTC",
            trend="uptrend",
            status="promoted",
            reason="drift",
            version="16",
            previous_version="15",
            champion_version="16",
            classifier="xgboost",
            metrics={"overall_score": 0.61, "accuracy": 0.567},
            why="overall 0.61 > champion 0.58 on the same 300 bars",
            duration_s=42.5,
        ),
        ModelOutcome(symbol="ETH", trend="downtrend", status="kept", reason="schedule", champion_version="8"),
        ModelOutcome(
            symbol="SOL",
            trend="uptrend",
            status="promoted",
            reason="performance",
            version="1",
            champion_version="1",
            metrics={"overall_score": 0.61, "accuracy": 0.567},
        ),
        ModelOutcome(
            symbol="ADA",
            trend="uptrend",
            status="rejected",
            reason="drift",
            version="17",
            previous_version="16",
            champion_version="16",
            why="overall 0.55 < champion 0.61 on the same 300 bars",
        ),
        ModelOutcome(
            symbol="XYZ",
            trend="uptrend",
            status="failed",
            reason="manual",
            error="DataNotFoundError",
            cause=LAMBDA_ERROR_CAUSE,
            failed_step="PrepareDataset",
        ),
    ]


# --- failure_message -------------------------------------------------------------------------------
def test_failure_message_extracts_lambda_error_message_without_stack_trace() -> None:
    outcome = _outcomes()[4]
    assert outcome.failure_message() == (
        "DataNotFoundError: s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv does not exist"
    )
    assert "stackTrace" not in outcome.failure_message()
    assert "app.py" not in outcome.failure_message()


@pytest.mark.parametrize(
    ("error", "cause", "expected"),
    [
        (
            "States.Timeout",
            "Task timed out after 120.00 seconds",
            "States.Timeout: Task timed out after 120.00 seconds",
        ),
        (None, "plain text cause", "plain text cause"),
        ("States.Runtime", None, "States.Runtime: "),
        (None, None, ""),
        # JSON that is not a Lambda error payload is shown as is.
        ("Boom", '["a", "b"]', 'Boom: ["a", "b"]'),
        ("Boom", '{"message": "no errorMessage key"}', 'Boom: {"message": "no errorMessage key"}'),
        ("Boom", "{not json", "Boom: {not json"),
        ("Boom", "42", "Boom: 42"),
        (None, json.dumps({"errorMessage": "bad input", "errorType": "ValidationError"}), "bad input"),
    ],
)
def test_failure_message_fallbacks(error: str | None, cause: str | None, expected: str) -> None:
    outcome = ModelOutcome(symbol="BTC", trend="uptrend", status="failed", error=error, cause=cause)
    assert outcome.failure_message() == expected


def test_outcome_keeps_extra_fields_from_the_state_machine() -> None:
    outcome = ModelOutcome.model_validate(
        {"symbol": "BTC", "trend": "uptrend", "status": "prepared", "bars": 3500, "dataset_key": "runs/x"}
    )
    assert outcome.model_dump()["bars"] == 3500


def test_outcome_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        ModelOutcome(symbol="BTC", trend="uptrend", status="exploded")


# --- one line per model ----------------------------------------------------------------------------
SCORES = {"overall_score": 0.6123, "accuracy": 0.5671, "sharpe": 1.2}
WHY_LOST = "overall 0.55 < champion 0.61 on the same 300 bars"


def _outcome(status: str, **fields: Any) -> ModelOutcome:
    return ModelOutcome.model_validate({"symbol": "BTC", "trend": "uptrend", "status": status, **fields})


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        pytest.param(
            _outcome("promoted", version="16", previous_version="15", champion_version="16", metrics=SCORES),
            "BTC uptrend: v15 -> v16, overall 0.61, accuracy 0.567",
            id="promoted-next",
        ),
        pytest.param(
            _outcome("promoted", version=1, champion_version=1, metrics=SCORES),
            "BTC uptrend: new champion v1, overall 0.61, accuracy 0.567",
            id="promoted-first",
        ),
        pytest.param(
            _outcome("promoted", version=16, previous_version=15),
            "BTC uptrend: v15 -> v16",
            id="promoted-without-metrics",
        ),
        pytest.param(
            _outcome("rejected", version="17", previous_version="16", champion_version="16", why=WHY_LOST),
            "BTC uptrend: challenger v17 rejected (overall 0.55 < champion 0.61 on the same 300 bars); v16 stays",
            id="rejected-registered",
        ),
        pytest.param(
            _outcome("rejected", previous_version="16", champion_version="16", why="positive_accuracy 0.41 <= 0.5"),
            "BTC uptrend: no challenger registered (positive_accuracy 0.41 <= 0.5); v16 stays",
            id="rejected-by-gate",
        ),
        pytest.param(
            _outcome("rejected", why="positive_accuracy 0.41 <= 0.5"),
            "BTC uptrend: no challenger registered (positive_accuracy 0.41 <= 0.5); no champion yet",
            id="rejected-no-champion",
        ),
        pytest.param(
            _outcome("kept", champion_version="16", why="no new bars since v16 was trained"),
            "BTC uptrend: nothing to register (no new bars since v16 was trained); v16 stays",
            id="kept",
        ),
        pytest.param(_outcome("prepared", bars=3500), "BTC uptrend: dataset prepared, 3500 bars", id="prepared"),
        pytest.param(
            _outcome("failed", failed_step="TrainModel", error="DataNotFoundError", cause=LAMBDA_ERROR_CAUSE),
            "BTC uptrend: training failed in TrainModel: DataNotFoundError: "
            "s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv does not exist",
            id="failed-in-step",
        ),
        pytest.param(
            _outcome("failed", error="States.Timeout", cause="Task timed out after 120.00 seconds"),
            "BTC uptrend: training failed: States.Timeout: Task timed out after 120.00 seconds",
            id="failed-without-step",
        ),
        pytest.param(_outcome("failed"), "BTC uptrend: training failed", id="failed-without-error"),
        pytest.param(
            _outcome("promoted", version="4", previous_version="3", metrics=SCORES, reason="drift"),
            "BTC uptrend: v3 -> v4, overall 0.61, accuracy 0.567 [trigger: drift]",
            id="trigger",
        ),
    ],
)
def test_outcome_line(outcome: ModelOutcome, expected: str) -> None:
    assert outcome_line(outcome) == expected


def test_failure_line_is_one_line_without_the_stack_trace() -> None:
    cause = json.dumps({"errorMessage": "invalid configuration:\n  RETRAIN_X: bad\n  RETRAIN_Y: bad " + "z" * 1000})
    line = outcome_line(_outcome("failed", failed_step="PrepareDataset", error="ConfigurationError", cause=cause))
    assert "\n" not in line
    assert line.startswith(
        "BTC uptrend: training failed in PrepareDataset: ConfigurationError: invalid configuration: RETRAIN_X"
    )
    assert line.endswith("...") and len(line) < 500


def test_rejected_without_why_falls_back_to_detail_then_nothing() -> None:
    assert outcome_line(_outcome("rejected", version="17", champion_version="16", detail="lost")) == (
        "BTC uptrend: challenger v17 rejected (lost); v16 stays"
    )
    assert outcome_line(_outcome("rejected", version="17")) == "BTC uptrend: challenger v17 rejected; no champion yet"


def test_outcome_fields_are_typed() -> None:
    outcome = _outcome(
        "promoted", version=16, previous_version="15", classifier="xgboost", duration_s=12, metrics=SCORES
    )
    assert (outcome.version, outcome.previous_version, outcome.duration_s) == ("16", "15", 12.0)
    with pytest.raises(ValueError):
        _outcome("promoted", version=["16"])
    with pytest.raises(ValueError):
        _outcome("failed", duration_s="slow")


# --- summarize_run ----------------------------------------------------------------------------------
def test_summary_subject_tallies_statuses_in_a_fixed_order() -> None:
    notification = summarize_run("run-42", _outcomes(), CREATED_AT)
    assert notification.subject == "Retraining run run-42: 2 promoted, 1 rejected, 1 kept, 1 failed"
    assert notification.run_id == "run-42"
    assert notification.created_at == CREATED_AT
    assert len(notification.outcomes) == 5


def test_summary_subject_of_one_of_each() -> None:
    outcomes = [_outcome("failed"), _outcome("rejected"), _outcome("promoted")]
    assert summarize_run("r7", outcomes, CREATED_AT).subject == "Retraining run r7: 1 promoted, 1 rejected, 1 failed"


def test_summary_text_is_the_subject_and_one_line_per_model() -> None:
    text = summarize_run("run-42", _outcomes(), CREATED_AT).text
    assert text.splitlines() == [
        "Retraining run run-42: 2 promoted, 1 rejected, 1 kept, 1 failed",
        "BTC uptrend: v15 -> v16, overall 0.61, accuracy 0.567 [trigger: drift]",
        "ETH downtrend: nothing to register; v8 stays [trigger: schedule]",
        "SOL uptrend: new champion v1, overall 0.61, accuracy 0.567 [trigger: performance]",
        "ADA uptrend: challenger v17 rejected (overall 0.55 < champion 0.61 on the same 300 bars); v16 stays"
        " [trigger: drift]",
        "XYZ uptrend: training failed in PrepareDataset: DataNotFoundError: "
        "s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv does not exist [trigger: manual]",
    ]


def test_summary_of_failure_uses_error_not_detail() -> None:
    outcome = ModelOutcome(
        symbol="BTC", trend="uptrend", status="failed", detail="ignored", error="States.Timeout", cause="timed out"
    )
    text = summarize_run("r", [outcome], CREATED_AT).text
    assert text.splitlines()[1] == "BTC uptrend: training failed: States.Timeout: timed out"
    assert "ignored" not in text


def test_summary_of_empty_run() -> None:
    notification = summarize_run("run-0", [], CREATED_AT)
    assert notification.subject == "Retraining run run-0: no models"
    assert notification.text == "Retraining run run-0: no models"


# --- outbox -----------------------------------------------------------------------------------------
class FakeStore:
    """Records put_json calls the way S3ObjectStore would receive them (and reads back the last of a key)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.puts: list[tuple[str, Any]] = []

    def put_json(self, key: str, document: Any) -> str:
        self.puts.append((key, document))
        return "version-1"

    def get_json(self, key: str) -> Any:
        return next(document for written, document in reversed(self.puts) if written == key)

    def list_keys(self, prefix: str) -> list[str]:
        return sorted({key for key, _ in self.puts if key.startswith(prefix)})


def test_outbox_writes_the_notification_under_its_key() -> None:
    store = FakeStore("retrain-local-123456789012-us-east-1")
    notification = summarize_run("run-42", _outcomes(), CREATED_AT)

    uri = OutboxNotifier(store).send(notification)  # type: ignore[arg-type]

    key = notification_key("run-42", CREATED_AT)
    assert key == "notifications/2025-02-20/run-42.json"
    assert uri == f"s3://retrain-local-123456789012-us-east-1/{key}"
    assert len(store.puts) == 1
    written_key, document = store.puts[0]
    assert written_key == key
    json.dumps(document)  # JSON-safe as stored (mode="json")
    assert document["subject"] == notification.subject
    assert document["text"] == notification.text
    assert document["created_at"].startswith("2025-02-20T00:05:00")
    assert [o["symbol"] for o in document["outcomes"]] == ["BTC", "ETH", "SOL", "ADA", "XYZ"]
    assert document["outcomes"][0]["metrics"] == {"overall_score": 0.61, "accuracy": 0.567}


def test_outbox_is_idempotent_per_run() -> None:
    store = FakeStore("bucket")
    notifier = OutboxNotifier(store)  # type: ignore[arg-type]
    first = notifier.send(summarize_run("run-1", _outcomes(), CREATED_AT))
    second = notifier.send(summarize_run("run-1", _outcomes()[:1], CREATED_AT))
    other = notifier.send(summarize_run("run-2", _outcomes(), CREATED_AT))
    assert first == second != other
    assert store.puts[0][0] == store.puts[1][0] != store.puts[2][0]


# --- telegram -----------------------------------------------------------------------------------------
TOKEN = "123456:AAH-secret_token"
CHAT = "-1001234567890"


def _ok(message_id: int = 7) -> httpx.Response:
    return httpx.Response(200, json={"ok": True, "result": {"message_id": message_id, "chat": {"id": -1}}})


class FakeTelegram:
    """Answers sendMessage with the queued responses (then ok) and records every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.responses:
            response = self.responses.pop(0)
            if isinstance(response, Exception):
                raise response
            return response
        return _ok(len(self.requests))

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def texts(self) -> list[str]:
        return [json.loads(request.content)["text"] for request in self.requests]


def _telegram(fake: FakeTelegram, sleeps: list[float] | None = None) -> TelegramNotifier:
    recorded = sleeps if sleeps is not None else []
    return TelegramNotifier(TOKEN, CHAT, client=fake.client(), sleep=recorded.append)


def test_telegram_posts_the_exact_send_message_request() -> None:
    fake = FakeTelegram(_ok(42))
    notification = summarize_run("run-42", _outcomes(), CREATED_AT)

    where = _telegram(fake).send(notification)

    [request] = fake.requests
    assert request.method == "POST"
    assert str(request.url) == f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    assert request.url.path == f"/bot{TOKEN}/sendMessage"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"chat_id": CHAT, "text": notification.text, "disable_web_page_preview": True}
    assert where == f"telegram:{CHAT}/42"
    assert TOKEN not in where and TOKEN not in repr(_telegram(fake))


def test_telegram_base_url_is_configurable() -> None:
    fake = FakeTelegram()
    TelegramNotifier(TOKEN, CHAT, client=fake.client(), base_url="http://localhost:8081/").send(
        summarize_run("r", [], CREATED_AT)
    )
    assert str(fake.requests[0].url) == f"http://localhost:8081/bot{TOKEN}/sendMessage"


def test_long_text_is_split_on_line_boundaries_into_messages_within_the_limit() -> None:
    outcomes = [
        _outcome("rejected", symbol=f"S{i:03d}", version="17", champion_version="16", why="x" * 60) for i in range(80)
    ]
    notification = summarize_run("run-big", outcomes, CREATED_AT)
    assert len(notification.text) > 2 * TELEGRAM_MAX_CHARS
    fake = FakeTelegram()

    where = _telegram(fake).send(notification)

    texts = fake.texts()
    assert len(texts) == 3
    assert all(0 < len(text) <= TELEGRAM_MAX_CHARS for text in texts)
    assert "\n".join(texts) == notification.text  # nothing lost, every line whole in one message
    assert where == f"telegram:{CHAT}/1,2,3"


def test_a_retry_sends_only_the_chunks_not_sent_yet_and_then_nothing() -> None:
    """Chunk 2 of 3 fails once: the retry sends chunks 2 and 3 only, a later retry sends nothing; each
    chunk leaves a marker per (run, chunk) in the store once Telegram accepted it."""
    from common.aws.storage import MemoryObjectStore
    from common.core.keys import sent_chunk_key

    outcomes = [
        _outcome("rejected", symbol=f"S{i:03d}", version="17", champion_version="16", why="x" * 60) for i in range(80)
    ]
    notification = summarize_run("run-big", outcomes, CREATED_AT)
    store = MemoryObjectStore("b")
    failing = FakeTelegram(_ok(101), httpx.Response(500, json={"ok": False, "description": "Internal Server Error"}))

    with pytest.raises(NotificationError, match="HTTP 500"):
        TelegramNotifier(TOKEN, CHAT, client=failing.client(), store=store).send(notification)
    assert len(failing.requests) == 2
    assert list(store.list_keys("runs/run-big/")) == [sent_chunk_key("run-big", "telegram", 1)]

    retry = FakeTelegram(_ok(102), _ok(103))
    where = TelegramNotifier(TOKEN, CHAT, client=retry.client(), store=store).send(notification)

    chunks = split_message(notification.text)
    assert len(chunks) == 3 and retry.texts() == chunks[1:]
    assert where == f"telegram:{CHAT}/101,102,103"
    assert store.get_json(sent_chunk_key("run-big", "telegram", 2)) == {
        "run_id": "run-big", "channel": "telegram", "chunk": 2, "of": 3, "message_id": 102
    }  # fmt: skip

    again = FakeTelegram()
    assert TelegramNotifier(TOKEN, CHAT, client=again.client(), store=store).send(notification) == where
    assert again.requests == []
    # Another run's message is its own: nothing of run-big's counts for it.
    other = FakeTelegram()
    TelegramNotifier(TOKEN, CHAT, client=other.client(), store=store).send(summarize_run("run-2", [], CREATED_AT))
    assert len(other.requests) == 1


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a\nbb\nccc", 4, ["a\nbb", "ccc"]),
        ("a\nbb\nccc", 100, ["a\nbb\nccc"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),  # a line longer than the limit is cut hard
        ("ab\n\n\ncd", 2, ["ab", "cd"]),  # blank chunks are dropped (Telegram refuses empty text)
        ("", 10, []),
    ],
)
def test_split_message(text: str, limit: int, expected: list[str]) -> None:
    assert split_message(text, limit) == expected
    assert all(len(chunk) <= limit for chunk in split_message(text, limit))


def test_telegram_error_carries_the_description_and_never_the_token() -> None:
    fake = FakeTelegram(
        httpx.Response(400, json={"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    )
    with pytest.raises(NotificationError, match="Bad Request: chat not found") as caught:
        _telegram(fake).send(summarize_run("r", [], CREATED_AT))
    assert TOKEN not in str(caught.value)
    assert "HTTP 400" in str(caught.value)
    assert len(fake.requests) == 1  # a 400 is not retried


def test_telegram_ok_false_with_http_200_is_an_error() -> None:
    fake = FakeTelegram(httpx.Response(200, json={"ok": False, "description": "Forbidden: bot was blocked"}))
    with pytest.raises(NotificationError, match="Forbidden: bot was blocked"):
        _telegram(fake).send(summarize_run("r", [], CREATED_AT))


def test_telegram_non_json_error_names_the_status() -> None:
    fake = FakeTelegram(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(NotificationError, match=r"HTTP 502\): Bad Gateway"):
        _telegram(fake).send(summarize_run("r", [], CREATED_AT))


def test_telegram_429_is_retried_once_after_retry_after() -> None:
    too_many = httpx.Response(
        429,
        json={
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        },
    )
    fake = FakeTelegram(too_many, _ok(9))
    sleeps: list[float] = []

    where = _telegram(fake, sleeps).send(summarize_run("r", [], CREATED_AT))

    assert sleeps == [3.0]
    assert len(fake.requests) == 2
    assert fake.requests[0].content == fake.requests[1].content
    assert where == f"telegram:{CHAT}/9"


def test_telegram_second_429_fails() -> None:
    too_many = httpx.Response(
        429, json={"ok": False, "description": "Too Many Requests", "parameters": {"retry_after": 1}}
    )
    fake = FakeTelegram(too_many, too_many)
    sleeps: list[float] = []
    with pytest.raises(NotificationError, match="Too Many Requests"):
        _telegram(fake, sleeps).send(summarize_run("r", [], CREATED_AT))
    assert sleeps == [1.0] and len(fake.requests) == 2


def test_telegram_429_asking_for_too_long_a_wait_fails_at_once() -> None:
    too_many = httpx.Response(
        429, json={"ok": False, "description": "Too Many Requests", "parameters": {"retry_after": 600}}
    )
    fake = FakeTelegram(too_many)
    sleeps: list[float] = []
    with pytest.raises(NotificationError, match="HTTP 429"):
        _telegram(fake, sleeps).send(summarize_run("r", [], CREATED_AT))
    assert sleeps == [] and len(fake.requests) == 1


def test_telegram_network_error_is_a_notification_error_without_the_token() -> None:
    fake = FakeTelegram(httpx.ConnectError(f"connection refused for /bot{TOKEN}/sendMessage"))
    with pytest.raises(NotificationError, match="Telegram unreachable: ConnectError") as caught:
        _telegram(fake).send(summarize_run("r", [], CREATED_AT))
    assert TOKEN not in str(caught.value)
    assert "<redacted>" in str(caught.value)
    assert caught.value.__suppress_context__  # the httpx error (URL with the token) is not chained


def test_telegram_owns_a_client_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTelegram()
    clients: list[httpx.Client] = []

    def make_client(**kwargs: Any) -> httpx.Client:
        client = real_client(transport=httpx.MockTransport(fake), **kwargs)
        clients.append(client)
        return client

    real_client = httpx.Client
    monkeypatch.setattr(httpx, "Client", make_client)
    TelegramNotifier(TOKEN, CHAT).send(summarize_run("r", [], CREATED_AT))
    assert len(fake.requests) == 1 and clients[0].is_closed


@pytest.mark.parametrize(("token", "chat"), [("", CHAT), ("12 34", CHAT), ("123/abc", CHAT), (TOKEN, " ")])
def test_telegram_rejects_malformed_credentials_without_echoing_them(token: str, chat: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TelegramNotifier(token, chat)
    assert not token or token not in str(caught.value)


# --- channels from settings ---------------------------------------------------------------------------
def _telegram_settings(**overrides: Any) -> Settings:
    return load_settings(
        notify_channels="outbox,telegram",
        telegram_secret_name="retrain/telegram",
        telegram_chat_id=CHAT,
        **overrides,
    )


def test_outbox_only_by_default() -> None:
    notifiers = notifiers_from_settings(load_settings(), store=FakeStore("b"), secret_reader=_no_secrets)  # type: ignore[arg-type]
    assert [type(n) for n in notifiers] == [OutboxNotifier]


def _no_secrets(name: str) -> str:
    raise AssertionError(f"secret {name} read although telegram is not configured")


@pytest.mark.parametrize("secret", [json.dumps({"token": TOKEN}), TOKEN, f"{TOKEN}\n"])
def test_telegram_token_from_a_json_or_plain_secret(secret: str) -> None:
    read: list[str] = []
    fake = FakeTelegram()

    def reader(name: str) -> str:
        read.append(name)
        return secret

    notifiers = notifiers_from_settings(
        _telegram_settings(),
        store=FakeStore("b"),
        secret_reader=reader,
        client=fake.client(),  # type: ignore[arg-type]
    )
    assert [n.channel for n in notifiers] == ["outbox", "telegram"]
    assert read == ["retrain/telegram"]
    notifiers[1].send(summarize_run("r", [], CREATED_AT))
    assert fake.requests[0].url.path == f"/bot{TOKEN}/sendMessage"
    assert json.loads(fake.requests[0].content)["chat_id"] == CHAT


def test_telegram_chat_id_from_the_secret_when_settings_have_none() -> None:
    # Settings insist on RETRAIN_TELEGRAM_CHAT_ID today; the secret's chat_id is the fallback if they stop.
    settings = SimpleNamespace(notify_channels=("outbox", "telegram"), telegram_secret_name="s", telegram_chat_id=None)
    fake = FakeTelegram()
    notifiers = notifiers_from_settings(
        settings,  # type: ignore[arg-type]
        store=FakeStore("b"),  # type: ignore[arg-type]
        secret_reader=lambda name: json.dumps({"token": TOKEN, "chat_id": 4242}),
        client=fake.client(),
    )
    notifiers[1].send(summarize_run("r", [], CREATED_AT))
    assert json.loads(fake.requests[0].content)["chat_id"] == "4242"


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        pytest.param(
            lambda name: (_ for _ in ()).throw(ConfigurationError(f"cannot read secret {name!r}")),
            "ConfigurationError: cannot read secret 'retrain/telegram'",
            id="unreadable",
        ),
        pytest.param(lambda name: json.dumps({"api_key": TOKEN}), "no string field 'token'", id="no-token-field"),
        pytest.param(lambda name: json.dumps([TOKEN]), "not an object", id="json-list"),
        pytest.param(lambda name: "has spaces in it", "empty or malformed", id="malformed"),
    ],
)
def test_unusable_telegram_secret_is_a_failed_channel_not_an_exception(reader: Any, message: str) -> None:
    store = FakeStore("b")
    notifiers = notifiers_from_settings(_telegram_settings(), store=store, secret_reader=reader)  # type: ignore[arg-type]
    report = deliver(summarize_run("r", [], CREATED_AT), notifiers)
    assert report.delivered_to == ["s3://b/notifications/2025-02-20/r.json"]
    [failure] = report.failed
    assert failure["channel"] == "telegram" and message in failure["error"]
    assert TOKEN not in failure["error"]
    assert len(store.puts) == 1


# --- deliver ------------------------------------------------------------------------------------------
class Boom:
    channel = "boom"

    def send(self, notification: Notification) -> str:
        raise RuntimeError("disk on fire")


class RecordingLog:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, msg: str, *args: Any, extra: dict[str, Any] | None = None) -> None:
        self.records.append(("info", msg, extra or {}))

    def warning(self, msg: str, *args: Any, extra: dict[str, Any] | None = None) -> None:
        self.records.append(("warning", msg, extra or {}))


class Written:
    """A channel that keeps the text (a stand-in for any working channel)."""

    channel = "console"

    def __init__(self, written: list[str]) -> None:
        self.written = written

    def send(self, notification: Notification) -> str:
        self.written.append(notification.text)
        return "console"


def test_deliver_reports_a_failing_channel_and_sends_to_the_others() -> None:
    store = FakeStore("b")
    fake = FakeTelegram(httpx.Response(400, json={"ok": False, "description": "Bad Request: chat not found"}))
    written: list[str] = []
    log = RecordingLog()
    notifiers = [OutboxNotifier(store), Boom(), _telegram(fake), Written(written)]  # type: ignore[arg-type]

    report = deliver(summarize_run("run-42", _outcomes(), CREATED_AT), notifiers, log=log)

    assert report == DeliveryReport(
        delivered_to=["s3://b/notifications/2025-02-20/run-42.json", "console"],
        failed=[
            {"channel": "boom", "error": "RuntimeError: disk on fire"},
            {"channel": "telegram", "error": "Telegram sendMessage failed (HTTP 400): Bad Request: chat not found"},
        ],
    )
    assert len(store.puts) == 1 and len(written) == 1
    warnings = [extra for level, _, extra in log.records if level == "warning"]
    assert [w["channel"] for w in warnings] == ["boom", "telegram"]
    assert all(w["run_id"] == "run-42" for w in warnings)


def test_deliver_to_nothing_is_an_empty_report() -> None:
    assert deliver(summarize_run("r", [], CREATED_AT), []) == DeliveryReport()
