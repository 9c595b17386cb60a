"""Delivery of what the outbox holds to Slack, at the end of a run or a digest: oldest first,
stopping at the first failure so order is kept; a row lock per message means two senders never
post the same one. Delivery never fails or rolls back a run."""

import logging
from typing import Any

import sqlalchemy as sa
from prefect import get_run_logger
from pydantic import BaseModel

from tasks.redact import redact
from tasks.secrets import resolve
from tasks.settings import AssaySettings, get_settings
from tasks.store.sql import query

log = logging.getLogger("assay.notify")


def deliver(engine: sa.Engine) -> None:
    """Send what the outbox holds; a Slack problem is logged and never fails the run."""
    logger = get_run_logger()
    try:
        report = deliver_pending(engine, get_settings())
    except Exception as exc:
        logger.warning("slack delivery skipped: %s", type(exc).__name__)
        return
    if report.error:
        logger.warning(
            "slack: %d sent, %d pending (%s); the next run retries",
            report.sent,
            report.pending,
            report.error,
        )
    elif report.sent:
        logger.info("slack: %d messages sent", report.sent)


class DeliveryReport(BaseModel):
    sent: int = 0
    pending: int = 0
    error: str | None = None


def slack_configured(settings: AssaySettings) -> bool:
    return settings.slack_webhook_url is not None or settings.slack_bot_token is not None


# -- delivery --------------------------------------------------------------------------------------
def _retry_handlers() -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def _sender(settings: AssaySettings) -> Any:
    """A function posting one payload, raising on failure (slack-sdk retries first)."""
    if settings.slack_bot_token is not None:
        from slack_sdk import WebClient

        client = WebClient(
            token=resolve(settings.slack_bot_token.get_secret_value()),
            base_url=settings.slack_base_url,
            retry_handlers=_retry_handlers(),
            timeout=15,
        )

        def post(payload: dict[str, Any]) -> None:
            # Queued before Slack was configured: the channel set since then applies.
            channel = payload.get("channel") or settings.slack_channel
            if not channel:
                raise RuntimeError("no channel: set alerts.channel or ASSAY_SLACK_CHANNEL")
            client.chat_postMessage(**{**payload, "channel": channel})  # raises when not ok

        return post
    assert settings.slack_webhook_url is not None
    from slack_sdk.webhook import WebhookClient

    webhook = WebhookClient(
        resolve(settings.slack_webhook_url.get_secret_value()),
        retry_handlers=_retry_handlers(),
        timeout=15,
    )

    def send(payload: dict[str, Any]) -> None:
        response = webhook.send(text=payload["text"], blocks=payload.get("blocks"))
        if response.status_code != 200:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.body[:200]}")

    return send


def _describe_failure(exc: Exception) -> str:
    """What went wrong, without the request (which could carry a token) or the payload."""
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return redact(f"{type(exc).__name__}: {response.get('error') or response.status_code}")
    return redact(f"{type(exc).__name__}: {str(exc)[:200]}")


def deliver_pending(engine: sa.Engine, settings: AssaySettings, limit: int = 200) -> DeliveryReport:
    """Send pending messages oldest first; stop at the first failure so order is kept."""
    report = DeliveryReport()
    if not slack_configured(settings):
        return report
    post = _sender(settings)
    for _ in range(limit):
        with engine.begin() as conn:
            row = conn.execute(sa.text(query("alerts", "next_pending"))).one_or_none()
            if row is None:
                break
            try:
                post(dict(row.payload))
            except Exception as exc:  # Slack down, rate limited past retries, bad channel...
                report.error = _describe_failure(exc)
                conn.execute(
                    sa.text(query("alerts", "mark_failed")), {"id": row.id, "error": report.error}
                )
                log.warning("slack delivery failed, will retry next run: %s", report.error)
                break
            conn.execute(sa.text(query("alerts", "mark_sent")), {"id": row.id})
            report.sent += 1
    with engine.connect() as conn:
        report.pending = conn.execute(sa.text(query("alerts", "count_pending"))).scalar_one()
    return report
