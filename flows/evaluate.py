"""`evaluate_recent`: the hourly flow. Pull new logs, evaluate them, write scores exactly once."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from evaluators.judges.client import JudgeRuntime
from tasks import pipeline
from tasks.config import EvalJob
from tasks.db import scores_engine
from tasks.errors import TransientError
from tasks.judging import ensure_limits, judge_slots
from tasks.persist import PageCounts
from tasks.runs import RunKind, RunPlan, RunSummary, deployment_lock, finish_run, start_run
from tasks.source import Cursor


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry on dropped connections and declared transient errors, never on bad config or data."""
    exc = state.result(raise_on_failure=False, _sync=True)
    return isinstance(exc, TransientError | sa.exc.OperationalError | sa.exc.InterfaceError)


@task(
    name="evaluate-page",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=is_transient,
)
async def evaluate_page(
    job: EvalJob,
    plan: RunPlan,
    after: Cursor | None,
    judges: JudgeRuntime | None = None,
    slots: dict[str, int] | None = None,
) -> pipeline.PageOutcome:
    evaluators = pipeline.build_evaluators(job)
    async with judge_slots(slots or {}):
        return await pipeline.process_page(
            job, scores_engine(), plan.run_id, after, plan.start, plan.until, evaluators, judges
        )


def run_window_end(job: EvalJob, until: datetime | None) -> datetime:
    """Latest log time to read: `until` if given, never closer to now than the lag allows."""
    scheduled = flow_run.scheduled_start_time or datetime.now(UTC)
    ceiling = scheduled - job.source.lag
    return min(until, ceiling) if until is not None else ceiling


async def run_pages(
    job: EvalJob, plan: RunPlan, judges: JudgeRuntime | None, slots: dict[str, int]
) -> PageCounts:
    logger = get_run_logger()
    counts, cursor = PageCounts(), plan.cursor
    while True:
        outcome = await evaluate_page(job, plan, cursor, judges, slots)
        counts = counts + outcome.counts
        logger.info(
            "page done: pulled=%d quarantined=%d scores=%d (run total pulled=%d)",
            outcome.counts.pulled,
            outcome.counts.quarantined,
            outcome.counts.scored,
            counts.pulled,
        )
        if outcome.last is None or not outcome.full:
            return counts
        cursor = outcome.last


@flow(name="evaluate_recent", log_prints=False)
async def evaluate_recent(
    job: EvalJob, until: datetime | None = None, kind: RunKind = "scheduled"
) -> RunSummary:
    """Evaluate logs newer than the deployment's watermark and older than now minus the lag."""
    logger = get_run_logger()
    engine = scores_engine()
    window_end = run_window_end(job, until)
    with deployment_lock(engine, job.deployment):
        plan = start_run(
            engine,
            job.deployment,
            window_end,
            job.source.initial_lookback,
            kind=kind,
            flow_run_id=flow_run.id,
        )
        logger.info(
            "run %s of %s: logs after %s up to %s",
            plan.run_id,
            job.deployment,
            plan.cursor.ts if plan.cursor else plan.start,
            plan.until,
        )
        models = pipeline.judge_models(pipeline.build_evaluators(job))
        judges = JudgeRuntime(job.judge_settings()) if models else None
        try:
            if judges is not None:
                judges.slots = await ensure_limits(models, job.judge_settings())
            await run_pages(job, plan, judges, judges.slots if judges else {})
        except BaseException as exc:
            finish_run(
                engine,
                plan.run_id,
                "failed",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                details=run_details(job, judges),
            )
            raise
        finally:
            if judges is not None:
                await judges.close()
        return finish_run(engine, plan.run_id, "completed", details=run_details(job, judges))


def run_details(job: EvalJob, judges: JudgeRuntime | None) -> dict[str, Any]:
    """What the run record keeps beyond counts: the sampling rule and each judge model's health."""
    if judges is None:
        return {}
    return {
        "sampling": job.sampling.model_dump(),
        "judges": judges.report(),
    }
