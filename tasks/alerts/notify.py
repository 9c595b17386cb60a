"""The hooks a run's lifecycle hands to `finish_run`: compose what the run has to say
(`compose.py`) and queue it in the outbox (`outbox.py`) in the run record's own transaction.
Delivery (`delivery.py`) comes after the commit: what cannot be sent stays pending, in order,
and the next run sends it. Each message has a stable id, so queueing it twice does nothing."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tasks.alerts.compose import compose, pipeline_changes
from tasks.alerts.examples import failing_examples
from tasks.alerts.outbox import queue, slack_channel
from tasks.alerts.slack_messages import (
    pipeline_message,
)
from tasks.config import EvalJob
from tasks.settings import AssaySettings
from tasks.store.runs import RunSummary


def notify_on_finish(job: EvalJob, settings: AssaySettings, now: datetime, link: str | None) -> Any:
    """The `then` of a completed run: compose, and queue when Slack is configured."""

    def hook(conn: sa.Connection, summary: RunSummary) -> None:
        messages = compose(conn, job, summary, now, link, failing_examples(job))
        summary.notifications = [{"kind": m.kind, "text": m.text} for m in messages]
        # Queued whether or not Slack is configured yet: `assay outbox` shows them, and they
        # are sent, in order, once it is.
        queue(conn, job.deployment, summary.run_id, slack_channel(job, settings), messages)

    return hook


def notify_contract_broken(
    job: EvalJob, settings: AssaySettings, error: str, link: str | None
) -> Any:
    """The `then` of a run stopped by the data contract: its alert opens (or, after the
    cooldown, reminds); not one message per run."""

    def hook(conn: sa.Connection, summary: RunSummary) -> None:
        changes = pipeline_changes(conn, job, summary, datetime.now(UTC), broken=error)
        messages = [pipeline_message(job.deployment, change, link) for change in changes]
        summary.notifications = [{"kind": m.kind, "text": m.text} for m in messages]
        queue(conn, job.deployment, summary.run_id, slack_channel(job, settings), messages)

    return hook
