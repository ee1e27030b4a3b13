"""Operator notifications: what a run did, one line per model, and where the message is delivered.

The message text is pure (:func:`summarize_run`); delivery goes through a ``Notifier``. The outbox
notifier writes the message to S3 (the durable record every deployment has); the console and Telegram
add to it. :func:`deliver` sends to every channel and never raises: a notification that cannot be
delivered must not fail the training run it reports on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, get_args
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from common.aws.secrets import read_secret
from common.core.errors import ConfigurationError, RetrainError
from common.core.keys import notification_key, sent_chunk_key, sent_chunks_prefix
from common.core.settings import model_label

if TYPE_CHECKING:
    import httpx

    from common.aws.storage import ObjectStore, S3ObjectStore
    from common.core.settings import Settings

#: promoted: the challenger became champion; suspended: no challenger passed and the champion's live record
#: says it is worse than not trading, so it no longer serves; rejected: a challenger failed the gate or lost to
#: the champion; kept: nothing to register; prepared: the run stopped after the dataset; failed: a step failed.
ModelStatus = Literal["promoted", "suspended", "rejected", "kept", "prepared", "failed"]
#: Order of the subject's tally: what changed first, failures last.
STATUS_ORDER: tuple[str, ...] = get_args(ModelStatus)

TELEGRAM_MAX_CHARS = 4096  # Bot API sendMessage: 1-4096 characters of text
_MAX_FAILURE_CHARS = 400  # one line per model: a long error is cut, the full one is in the execution history
_log = logging.getLogger(__name__)


class NotificationError(RetrainError):
    """A channel could not deliver a notification (the message never contains credentials)."""


def _version_text(value: object) -> object:
    """Registry versions arrive as numbers or strings (MLflow uses "16"); both mean the same version."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Version = Annotated[str, BeforeValidator(_version_text)]


class ModelOutcome(BaseModel):
    """One model's result in a run, as the state machine reports it (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")

    symbol: str
    trend: str
    status: ModelStatus
    interval: str | None = None  # of the model's bars (null: daily, as before the pool held intervals)
    reason: str = ""
    detail: str = ""
    error: str | None = None  # Step Functions error name (the exception type for a Lambda error)
    cause: str | None = None  # Step Functions cause: a Lambda error payload (JSON) or plain text
    version: Version | None = None  # the challenger's registered version
    previous_version: Version | None = None  # champion before the run
    champion_version: Version | None = None  # champion after the run
    classifier: str | None = None
    metrics: dict[str, Any] | None = None  # at least overall_score and accuracy when a model was trained
    why: str | None = None  # the promotion decision, in words
    failed_step: str | None = None  # state name where the model failed
    duration_s: float | None = None

    def failure_message(self) -> str:
        """``ErrorName: message`` without the stack trace a Lambda error payload carries."""
        message = self.cause or ""
        with contextlib.suppress(ValueError, TypeError):
            payload = json.loads(message)
            if isinstance(payload, dict) and "errorMessage" in payload:
                message = str(payload["errorMessage"])
        return f"{self.error}: {message}" if self.error else message


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    created_at: datetime
    subject: str
    text: str
    outcomes: list[ModelOutcome] = Field(default_factory=list)


# --- message text ------------------------------------------------------------------------------------
def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _scores(metrics: dict[str, Any] | None) -> list[str]:
    metrics = metrics or {}
    parts = []
    overall, accuracy = _number(metrics.get("overall_score")), _number(metrics.get("accuracy"))
    if overall is not None:
        parts.append(f"overall {overall:.2f}")
    if accuracy is not None:
        parts.append(f"accuracy {accuracy:.3f}")
    return parts


def _one_line(text: str, limit: int = _MAX_FAILURE_CHARS) -> str:
    """Multi-line errors (pydantic's) collapse into one line; very long ones are cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _champion_stays(outcome: ModelOutcome) -> str:
    champion = outcome.champion_version or outcome.previous_version
    return f"v{champion} stays" if champion else "no champion yet"


def _promoted(outcome: ModelOutcome) -> str:
    new = outcome.version or outcome.champion_version
    if new and outcome.previous_version:
        head = f"v{outcome.previous_version} -> v{new}"
    elif new:
        head = f"new champion v{new}"
    else:
        head = "promoted"
    return ", ".join([head, *_scores(outcome.metrics)])


def outcome_line(outcome: ModelOutcome) -> str:
    """The model's line of the run summary, e.g. ``BTC uptrend: v15 -> v16, overall 0.61, accuracy 0.567``."""
    why = outcome.why or outcome.detail
    because = f" ({why})" if why else ""
    if outcome.status == "promoted":
        body = _promoted(outcome)
    elif outcome.status == "suspended":
        body = f"v{outcome.champion_version} SUSPENDED, the API no longer serves it{because}"
    elif outcome.status == "rejected":
        challenger = f"challenger v{outcome.version} rejected" if outcome.version else "no challenger registered"
        body = f"{challenger}{because}; {_champion_stays(outcome)}"
    elif outcome.status == "kept":
        body = f"nothing to register{because}; {_champion_stays(outcome)}"
    elif outcome.status == "prepared":
        bars = (outcome.model_extra or {}).get("bars")
        body = (
            f"dataset prepared, {bars} bars"
            if isinstance(bars, int) and not isinstance(bars, bool)
            else "dataset prepared"
        )
    else:
        where = f" in {outcome.failed_step}" if outcome.failed_step else ""
        message = _one_line(outcome.failure_message())
        body = f"training failed{where}: {message}" if message else f"training failed{where}"
    trigger = f" [trigger: {outcome.reason}]" if outcome.reason else ""
    return f"{model_label(outcome.symbol, outcome.trend, outcome.interval or '1d')}: {body}{trigger}"


def summarize_run(run_id: str, outcomes: list[ModelOutcome], created_at: datetime) -> Notification:
    """Subject ``Retraining run <id>: 1 promoted, 1 rejected, 1 failed``; text = subject + one line per model."""
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUS_ORDER}
    tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no models"
    subject = f"Retraining run {run_id}: {tally}"
    return Notification(
        run_id=run_id,
        created_at=created_at,
        subject=subject,
        text="\n".join([subject, *(outcome_line(o) for o in outcomes)]),
        outcomes=outcomes,
    )


# --- delivery ----------------------------------------------------------------------------------------
class Notifier(Protocol):
    channel: str  # short name in delivery reports and logs

    def send(self, notification: Notification) -> str:
        """Deliver; return where it went (a key, a message id)."""
        ...


class Log(Protocol):
    """What :func:`deliver` logs through: a ``logging.Logger`` or a powertools ``Logger``."""

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...


class OutboxNotifier:
    """Writes each notification as JSON under ``notifications/`` (idempotent per run id)."""

    channel = "outbox"

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store

    def send(self, notification: Notification) -> str:
        key = notification_key(notification.run_id, notification.created_at)
        self.store.put_json(key, notification.model_dump(mode="json"))
        return f"s3://{self.store.bucket}/{key}"


def split_message(text: str, limit: int = TELEGRAM_MAX_CHARS) -> list[str]:
    """Chunks of at most ``limit`` characters cut at line ends, so no model's line is split across
    messages (a single line longer than the limit is cut hard). Blank chunks are dropped: Telegram
    refuses empty text."""
    chunks: list[str] = []
    lines: list[str] = []
    size = 0
    for line in text.splitlines():
        for piece in [line[i : i + limit] for i in range(0, len(line), limit)] or [""]:
            added = len(piece) + (1 if lines else 0)
            if lines and size + added > limit:
                chunks.append("\n".join(lines))
                lines, size, added = [], 0, len(piece)
            lines.append(piece)
            size += added
    if lines:
        chunks.append("\n".join(lines))
    return [chunk for chunk in chunks if chunk.strip()]


class SentChunks:
    """Which chunks of a run's message a channel has delivered: a marker object per (run, channel, chunk) in
    the data bucket, written right after the chunk was accepted and looked up before sending it. A retried
    NotifyOperator (Step Functions' retry, a redrive, a re-invocation) then sends only the chunks still
    missing, and nothing once all were sent. At least once, not exactly once: a send whose marker could not
    be written is sent again by the next attempt."""

    def __init__(self, store: ObjectStore, run_id: str, channel: str) -> None:
        self.store = store
        self.run_id = run_id
        self.channel = channel
        self._sent: set[str] | None = None  # marker keys, listed once (one request, not one per chunk)

    def delivered(self, number: int) -> object | None:
        """The message id chunk ``number`` (from 1) was delivered as, or None when it was not."""
        if self._sent is None:
            self._sent = set(self.store.list_keys(sent_chunks_prefix(self.run_id, self.channel)))
        key = sent_chunk_key(self.run_id, self.channel, number)
        return self.store.get_json(key)["message_id"] if key in self._sent else None

    def record(self, number: int, total: int, message_id: object) -> None:
        document = {"run_id": self.run_id, "channel": self.channel, "chunk": number, "of": total}
        self.store.put_json(sent_chunk_key(self.run_id, self.channel, number), {**document, "message_id": message_id})


class TelegramNotifier:
    """Sends the text through the Telegram Bot API (``sendMessage``), split at Telegram's length limit.

    The bot token is part of the request URL, so every error text is redacted before it is raised.
    A 429 is retried once after the ``retry_after`` Telegram asks for (if it fits ``max_retry_after_s``).
    With ``store``, sends are idempotent per run and chunk (:class:`SentChunks`).
    """

    channel = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        client: httpx.Client | None = None,
        base_url: str = "https://api.telegram.org",
        timeout_s: float = 10,
        sleep: Callable[[float], object] = time.sleep,
        max_retry_after_s: float = 10,
        store: ObjectStore | None = None,
    ) -> None:
        if not token or any(c.isspace() or c in "/?#" for c in token):
            raise ConfigurationError("the Telegram bot token is empty or malformed")
        if not str(chat_id).strip():
            raise ConfigurationError("the Telegram chat id is empty")
        self._token = token
        self.chat_id = str(chat_id)
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.max_retry_after_s = max_retry_after_s
        self.store = store

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r}, base_url={self.base_url!r})"

    def send(self, notification: Notification) -> str:
        import httpx

        chunks = split_message(notification.text)
        sent = SentChunks(self.store, notification.run_id, self.channel) if self.store is not None else None
        client = self.client or httpx.Client(timeout=self.timeout_s)
        ids: list[object] = []
        try:
            for number, chunk in enumerate(chunks, start=1):
                message_id = sent.delivered(number) if sent is not None else None
                if message_id is None:
                    message_id = self._send_one(client, chunk)
                    if sent is not None:
                        sent.record(number, len(chunks), message_id)
                ids.append(message_id)
        finally:
            if self.client is None:
                client.close()
        return f"telegram:{self.chat_id}/" + ",".join(str(i) for i in ids)

    def _redact(self, text: str) -> str:
        for secret in {self._token, quote(self._token, safe="")}:
            text = text.replace(secret, "<redacted>")
        return text

    def _send_one(self, client: httpx.Client, text: str) -> object:
        import httpx

        url = f"{self.base_url}/bot{self._token}/sendMessage"
        payload = {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}
        for attempt in (1, 2):
            try:
                response = client.post(url, json=payload, timeout=self.timeout_s)
            except httpx.HTTPError as exc:
                # from None: the chained httpx exception may carry the URL, and with it the token.
                raise NotificationError(self._redact(f"Telegram unreachable: {type(exc).__name__}: {exc}")) from None
            body = _json_object(response)
            if response.is_success and body.get("ok") is True:
                return (body.get("result") or {}).get("message_id", "")
            if response.status_code == 429 and attempt == 1:
                wait = _retry_after(body)
                if wait <= self.max_retry_after_s:
                    self.sleep(wait)
                    continue
            description = body.get("description") or response.reason_phrase or "no description"
            raise NotificationError(
                self._redact(f"Telegram sendMessage failed (HTTP {response.status_code}): {description}")
            )
        raise AssertionError("unreachable")  # pragma: no cover


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(body: dict[str, Any]) -> float:
    """Seconds Telegram asks to wait (``parameters.retry_after``); 1 s when it does not say."""
    parameters = body.get("parameters")
    value = _number(parameters.get("retry_after")) if isinstance(parameters, dict) else None
    return max(value, 0.0) if value is not None else 1.0


class _UnavailableNotifier:
    """A configured channel that could not be set up (e.g. its secret is unreadable): reported as failed
    on delivery instead of failing the handler before the outbox is written."""

    def __init__(self, channel: str, error: str) -> None:
        self.channel = channel
        self.error = error

    def send(self, notification: Notification) -> str:
        raise NotificationError(self.error)


def _telegram_credentials(raw: str) -> tuple[str, str | None]:
    """Token and optional chat id from a JSON secret ``{"token", "chat_id"?}`` or a plain-string token."""
    try:
        document = json.loads(raw)
    except ValueError:
        return raw.strip(), None
    if not isinstance(document, dict):
        raise ConfigurationError("the Telegram secret is JSON but not an object with a 'token' field")
    token, chat_id = document.get("token"), document.get("chat_id")
    if not isinstance(token, str):
        raise ConfigurationError("the Telegram secret has no string field 'token'")
    return token, None if chat_id is None else str(chat_id)


def notifiers_from_settings(
    settings: Settings,
    *,
    store: S3ObjectStore,
    secret_reader: Callable[[str], str] = read_secret,
    client: httpx.Client | None = None,
) -> list[Notifier]:
    """The configured channels: the outbox always (first, so it is written before any network call),
    Telegram when ``notify_channels`` includes it, recording what it sent in ``store`` (:class:`SentChunks`)."""
    notifiers: list[Notifier] = [OutboxNotifier(store)]
    if "telegram" in settings.notify_channels:
        try:
            if not settings.telegram_secret_name:
                raise ConfigurationError("RETRAIN_TELEGRAM_SECRET_NAME is not set")
            token, secret_chat_id = _telegram_credentials(secret_reader(settings.telegram_secret_name))
            chat_id = settings.telegram_chat_id or secret_chat_id
            if not chat_id:
                raise ConfigurationError("no Telegram chat id: set RETRAIN_TELEGRAM_CHAT_ID or the secret's chat_id")
            notifiers.append(TelegramNotifier(token, chat_id, client=client, store=store))
        except RetrainError as exc:
            notifiers.append(_UnavailableNotifier("telegram", f"{type(exc).__name__}: {exc}"))
    return notifiers


@dataclass(frozen=True)
class DeliveryReport:
    delivered_to: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # [{"channel", "error"}]


def deliver(notification: Notification, notifiers: Sequence[Notifier], *, log: Log = _log) -> DeliveryReport:
    """Send to every channel; a failing channel is logged and reported, never raised."""
    report = DeliveryReport()
    for notifier in notifiers:
        channel = getattr(notifier, "channel", type(notifier).__name__)
        try:
            where = notifier.send(notification)
        except Exception as exc:  # any channel failure is reported, not raised (see module docstring)
            error = str(exc) if isinstance(exc, NotificationError) else f"{type(exc).__name__}: {exc}"
            report.failed.append({"channel": channel, "error": error})
            log.warning(
                "notification channel failed",
                extra={"run_id": notification.run_id, "channel": channel, "error": error},
            )
            continue
        report.delivered_to.append(where)
        log.info("notification delivered", extra={"run_id": notification.run_id, "channel": channel, "to": where})
    return report
