"""Delivery of what the outbox holds, at the end of a run or a digest."""

import sqlalchemy as sa
from prefect import get_run_logger

from tasks.alerts.notify import deliver_pending
from tasks.settings import get_settings


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
