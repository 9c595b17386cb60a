"""Window probes: the cheap reads around a run's window. Logs no window will read (stamped in
the future, without a timestamp, or arrived behind the watermark), and which backfill chunks
hold any logs at all."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from prefect import get_run_logger

from tasks.config import EvalJob
from tasks.contract.suite import admit, future_start
from tasks.errors import TransientError
from tasks.run.tally import RunTally
from tasks.store.persist import PageCounts, write_page
from tasks.store.sql import query
from tasks.warehouse.connect import fitted_job, source_engine
from tasks.warehouse.normalize import reject
from tasks.warehouse.source import count_between, counts_per_chunk, fetch_page, undated_rows

FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
T = TypeVar("T")
#: Waits before the reads outside the page loop are tried again (as a page's task retries).
OUTSIDE_RETRY_DELAYS_S = (2.0, 10.0)


async def retried(action: Callable[[], T]) -> T:
    """A warehouse read outside the page loop, in a worker thread, retried like a page when the
    connection drops (a failover, an idle-session killer): the reads are idempotent, their
    quarantine upserts. The wait is asyncio's, so other chunks in this process go on."""
    for delay in (*OUTSIDE_RETRY_DELAYS_S, None):
        try:
            return await asyncio.to_thread(action)
        except (TransientError, sa.exc.OperationalError, sa.exc.InterfaceError):
            if delay is None:
                raise
            get_run_logger().warning("a warehouse read failed; retrying in %.0f s", delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def outside_the_window(job: EvalJob, engine: sa.Engine, run_id: str, tally: RunTally) -> None:
    """Logs no window will read: stamped in the future, without a timestamp (both quarantined),
    or arrived behind the watermark (counted, with the backfill that scores them)."""
    logger = get_run_logger()
    future = await retried(lambda: quarantine_future_logs(job, engine, run_id, datetime.now(UTC)))
    if future.quarantined:
        logger.warning("%d future-stamped logs were quarantined", future.quarantined)
    undated = await retried(lambda: quarantine_undated_logs(job, engine, run_id))
    if undated.quarantined:
        logger.warning("%d logs without a timestamp were quarantined", undated.quarantined)
    tally.late = await retried(lambda: late_logs(job, engine, run_id))
    if tally.late:
        logger.warning(
            "%d logs arrived after their window was read (later than the lag); score them with: %s",
            tally.late["count"],
            tally.late["remedy"],
        )


def quarantine_undated_logs(job: EvalJob, scores_db: sa.Engine, run_id: str) -> PageCounts:
    """Logs with a NULL timestamp fall in no window: each run looks for new ones (one cheap
    `ts IS NULL` probe) and quarantines them, so they are seen, not silently never read."""
    with source_engine(job.source).connect() as conn:
        rows = undated_rows(conn, job.source)
    if not rows:
        return PageCounts()
    rejects = [
        reject(row, ["ts: NULL, so the log belongs to no window and is never read; fix the "
                     "source, then `assay quarantine --replay`"])
        for row in rows
    ]  # fmt: skip
    with scores_db.connect() as conn:
        known = set(
            conn.execute(
                sa.text(query("persist", "quarantined_among")),
                {"deployment": job.deployment, "log_ids": [r.log_id for r in rejects]},
            ).scalars()
        )
    new = [r for r in rejects if r.log_id not in known]
    if not new:
        return PageCounts()
    return write_page(scores_db, job.deployment, run_id, [], new, None, len(new))


def late_logs(job: EvalJob, scores_db: sa.Engine, run_id: str) -> dict[str, Any] | None:
    """Logs that arrived behind the watermark (later than `lag` allowed) in the previous run's
    window: counted, so the summary can say so and name the backfill that scores them."""
    with scores_db.connect() as conn:
        previous = conn.execute(
            sa.text(query("runs", "previous_window")),
            {"deployment": job.deployment, "run_id": run_id},
        ).one_or_none()
    if previous is None or previous.window_start is None:
        return None
    with source_engine(job.source).connect() as conn:
        now = count_between(conn, job.source, previous.window_start, previous.window_end)
    late = now - previous.pulled
    if late <= 0:
        return None
    start, end = previous.window_start.isoformat(), previous.window_end.isoformat()
    return {
        "count": late,
        "window_start": start,
        "window_end": end,
        "remedy": f"assay backfill {job.deployment} --start {start} --end {end}",
    }


def quarantine_future_logs(
    job: EvalJob, scores_db: sa.Engine, run_id: str, now: datetime
) -> PageCounts:
    """Logs stamped beyond now + skew never enter a window until their time comes; catch them
    now, so a clock or timezone bug in logging is seen the hour it ships."""
    with source_engine(job.source).connect() as conn:
        rows = fetch_page(conn, job.source, None, future_start(job.quality, now), FAR_FUTURE)
    if not rows:
        return PageCounts()
    admission = admit(rows, job.source.format, job.quality, now=now)
    return write_page(scores_db, job.deployment, run_id, [], admission.rejects, None, len(rows))


def chunks_with_logs(
    job: EvalJob, windows: list[tuple[datetime, datetime]], chunk: timedelta
) -> list[tuple[datetime, datetime]]:
    """The backfill windows that hold logs, found with one grouped count over the whole range:
    an empty chunk costs no run (sessions and traces are found by their items, so a chunk
    without logs has none either)."""
    if not windows:
        return []
    source = fitted_job(job).source
    with source_engine(source).connect() as conn:
        counts = counts_per_chunk(conn, source, windows[0][0], windows[-1][1], chunk)
    return [window for number, window in enumerate(windows) if counts.get(number)]
