"""The transactional outbox: messages are queued in the run's own transaction and sent later, in
order, so a Slack outage delays them and never loses one."""

import json
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.alerts.slack_messages import (
    SlackMessage,
)
from tasks.config import EvalJob
from tasks.redact import redact
from tasks.settings import AssaySettings
from tasks.store.sql import query


# -- the outbox ------------------------------------------------------------------------------------
def slack_channel(job: EvalJob, settings: AssaySettings) -> str | None:
    return job.alerts.channel or settings.slack_channel


def queue(
    conn: sa.Connection,
    deployment: str,
    run_id: str | None,
    channel: str | None,
    messages: list[SlackMessage],
    key: str | None = None,
) -> None:
    """Add messages to the outbox; ids derive from `key` (default the run id), so queueing the
    same messages again is a no-op."""
    for position, message in enumerate(messages):
        conn.execute(
            sa.text(query("alerts", "insert_outbox")),
            {
                "id": f"{key or run_id}:{position}:{message.kind}",
                "deployment": deployment,
                "kind": message.kind,
                "channel": channel,
                "payload": redact(json.dumps(message.payload(channel))),
                "run_id": run_id,
            },
        )


class PendingMessage(BaseModel):
    id: str
    deployment: str
    kind: str
    channel: str | None
    text: str
    attempts: int
    last_error: str | None
    created_at: datetime


def pending_messages(
    engine: sa.Engine, deployment: str | None = None, limit: int = 50
) -> list[PendingMessage]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("alerts", "pending_messages")),
            {"deployment": deployment, "limit": limit},
        )
        return [PendingMessage.model_validate(row._asdict()) for row in rows]
