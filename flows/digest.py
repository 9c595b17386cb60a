"""`digest`: one Slack summary of a deployment's last day (for `alerts.summary: digest`)."""

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger

from tasks.alerts.compose import digest_message
from tasks.alerts.delivery import deliver, slack_configured
from tasks.alerts.outbox import queue, slack_channel
from tasks.alerts.slack_messages import SlackMessage
from tasks.config import EvalJob
from tasks.settings import get_settings
from tasks.store.db import scores_engine


def digest_preview(job: EvalJob, hours: int = 24) -> SlackMessage | None:
    """The digest as it would be posted, without posting it (no flow, no Prefect server)."""
    with scores_engine().connect() as conn:
        return digest_message(conn, job, datetime.now(UTC), timedelta(hours=hours))


@flow(name="digest", log_prints=False)
async def digest(job: EvalJob, hours: int = 24) -> str | None:
    """Queue and send the digest; returns its plain text (None when nothing ran)."""
    logger = get_run_logger()
    engine = scores_engine()
    settings = get_settings()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        message = digest_message(conn, job, now, timedelta(hours=hours))
        if message is not None and slack_configured(settings):
            key = f"digest-{job.deployment}-{now:%Y%m%d%H}"
            queue(conn, job.deployment, None, slack_channel(job, settings), [message], key=key)
    if message is None:
        logger.info("no runs of %s in the last %d h: no digest", job.deployment, hours)
        return None
    deliver(engine)
    return message.text
