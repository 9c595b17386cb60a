"""`evaluate_recent`: the hourly flow. Pull new logs, evaluate them, write scores exactly once."""

from datetime import UTC, datetime

from prefect import flow
from prefect.runtime import flow_run

from tasks.config import EvalJob
from tasks.run.kinds import KINDS
from tasks.run.lifecycle import run_lifecycle
from tasks.store.runs import RunKind, RunSummary


def run_window_end(job: EvalJob, until: datetime | None) -> datetime:
    """Latest log time to read: `until` if given, never closer to now than the lag allows."""
    scheduled = flow_run.scheduled_start_time or datetime.now(UTC)
    ceiling = scheduled - job.source.lag
    return min(until, ceiling) if until is not None else ceiling


@flow(name="evaluate_recent", log_prints=False)
async def evaluate_recent(
    job: EvalJob, until: datetime | None = None, kind: RunKind = "scheduled"
) -> RunSummary:
    """Evaluate logs newer than the deployment's watermark and older than now minus the lag."""
    async with run_lifecycle(job, KINDS[kind], window_end=run_window_end(job, until)) as run:
        await run.pages()
        await run.sessions()
    assert run.summary is not None
    return run.summary
