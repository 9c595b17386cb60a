"""The Prefect task shells of a run's work: a page of logs, and a pass over completed sessions
or traces. Both retry on transient failures (dropped connections, declared transient errors)
and never on bad config or data, and both time out rather than hold the deployment's lock."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from evaluators.unit_records import UnitKind
from tasks.budget.slots import judge_slots
from tasks.errors import TransientError
from tasks.run.page import PageContext, PageOutcome, process_page
from tasks.sessions import UnitOutcome, evaluate_completed_units
from tasks.store.rows import Cursor
from tasks.warehouse.connect import source_engine


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry on dropped connections and declared transient errors, never on bad config or data."""
    exc = state.result(raise_on_failure=False, _sync=True)
    return isinstance(exc, TransientError | sa.exc.OperationalError | sa.exc.InterfaceError)


#: A page is at most `page_size` logs (a unit pass, `sessions.chunk` units at a time); an hour
#: without progress means a stuck source or judge, and the run should fail loudly rather than
#: hold the deployment lock.
SHELL = dict(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=is_transient,
    timeout_seconds=3600,
)


@task(name="evaluate-page", tags=["assay", "evaluate-page"], **SHELL)  # type: ignore[call-overload]
async def evaluate_page(
    ctx: PageContext, after: Cursor | None, slots: dict[str, int] | None = None
) -> PageOutcome:
    async with judge_slots(slots or {}):
        return await process_page(ctx, after)


@task(name="evaluate-units", tags=["assay", "evaluate-units"], **SHELL)  # type: ignore[call-overload]
async def evaluate_units(
    ctx: PageContext, kind: UnitKind, since: datetime, slots: dict[str, int] | None = None
) -> UnitOutcome:
    """The sessions or traces complete by the end of the run's window and not scored yet. Safe
    to retry: a unit's scores and its evaluation record commit together."""
    async with judge_slots(slots or {}):
        return await evaluate_completed_units(
            ctx.job, kind, ctx.scores_db, source_engine(ctx.job.source), ctx.run_id, ctx.until,
            ctx.judges, since, ctx.kind.fixed_window,
        )  # fmt: skip
