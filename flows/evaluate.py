"""`evaluate_recent`: the hourly flow. Pull new logs, evaluate them, write scores exactly once."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from evaluators.judges.client import JudgeRuntime
from evaluators.judges.pricing import price_for
from flows.artifacts import publish_run_artifacts
from tasks import pipeline, redact
from tasks.budget import Ledger, LedgerGate
from tasks.config import EvalJob
from tasks.contract import ContractSummary
from tasks.db import scores_engine
from tasks.errors import ConfigError, DataContractBroken, TransientError
from tasks.judging import judge_slots, lease_slots
from tasks.notify import deliver_pending, notify_contract_broken, notify_on_finish
from tasks.persist import PageCounts
from tasks.runs import (
    HeldLock,
    RunKind,
    RunPlan,
    RunSummary,
    deployment_lock,
    finish_run,
    rollup_start,
    start_run,
)
from tasks.sampling import merge_strata
from tasks.settings import get_settings
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
    # A page is at most `page_size` logs; an hour without progress means a stuck source or
    # judge, and the run should fail loudly rather than hold the deployment lock.
    timeout_seconds=3600,
    tags=["assay", "evaluate-page"],
)
async def evaluate_page(
    job: EvalJob,
    plan: RunPlan,
    after: Cursor | None,
    judges: JudgeRuntime | None = None,
    slots: dict[str, int] | None = None,
    so_far: PageCounts | None = None,
) -> pipeline.PageOutcome:
    evaluators = pipeline.build_evaluators(job)
    async with judge_slots(slots or {}):
        return await pipeline.process_page(
            job,
            scores_engine(),
            plan.run_id,
            after,
            plan.start,
            plan.until,
            evaluators,
            judges,
            so_far,
            backfill=plan.backfill,
        )


def run_window_end(job: EvalJob, until: datetime | None) -> datetime:
    """Latest log time to read: `until` if given, never closer to now than the lag allows."""
    scheduled = flow_run.scheduled_start_time or datetime.now(UTC)
    ceiling = scheduled - job.source.lag
    return min(until, ceiling) if until is not None else ceiling


class RunTally:
    """What a run has done so far, kept outside the page loop so a failure can still report."""

    def __init__(self) -> None:
        self.counts = PageCounts()
        self.contract = ContractSummary()
        self.strata: dict[str, dict[str, dict[str, int]]] = {}
        self.unscored: dict[str, dict[str, int]] = {}
        self.copied = 0
        self.late: dict[str, Any] | None = None

    def add(self, counts: PageCounts, contract: ContractSummary) -> None:
        self.counts = self.counts + counts
        self.contract = self.contract + contract

    def add_sampling(self, outcome: pipeline.PageOutcome) -> None:
        for evaluator, strata in outcome.strata.items():
            merge_strata(self.strata.setdefault(evaluator, {}), strata)
        for evaluator, strata_left in outcome.unscored.items():
            left = self.unscored.setdefault(evaluator, {})
            for stratum, n in strata_left.items():
                left[stratum] = left.get(stratum, 0) + n
        self.copied += outcome.copied


class Judging(NamedTuple):
    judges: JudgeRuntime | None
    ledger: Ledger | None
    models: list[str]


@asynccontextmanager
async def judging(job: EvalJob, engine: sa.Engine, budget_key: str) -> AsyncIterator[Judging]:
    """The judge runtime of a run, behind the spend ledger of `budget_key` when the job has
    caps (a backfill's chunks share their parent's key, so its budget covers them all).
    Every run passes through here, so this is where its log lines start being redacted."""
    redact.refresh()
    redact.install_log_redaction()
    evaluators = pipeline.build_evaluators(job)
    models = pipeline.judge_models(evaluators)
    ledger = (
        Ledger(engine, job.deployment, budget_key, job.budget)
        if models and job.budget.capped
        else None
    )
    gate = LedgerGate(ledger) if ledger else None
    judges = (
        JudgeRuntime(job.judge_settings(), gate=gate, env=pipeline.judge_env(evaluators))
        if models
        else None
    )
    try:
        yield Judging(judges, ledger, models)
    finally:
        if gate is not None:
            await gate.close()
        if judges is not None:
            await judges.close()


def fail_run(
    engine: sa.Engine,
    run_id: str,
    exc: BaseException,
    details: dict[str, Any],
    hook: Any = None,
    rollups: tuple[datetime, datetime] | None = None,
) -> None:
    error = (
        "stopped: the process was told to stop (SIGTERM or SIGINT) and ended the run"
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
        else f"{type(exc).__name__}: {exc}"[:2000]
    )
    finish_run(
        engine,
        run_id,
        "failed",
        error=error,
        details=details,
        then=hook,
        rollups=rollups,
    )


async def run_pages(
    job: EvalJob, plan: RunPlan, judged: Judging, tally: RunTally, lock: HeldLock
) -> None:
    logger = get_run_logger()
    require_prices(job, judged.models)
    judges = judged.judges
    slots = await lease_slots(judges, judged.models)
    cursor = plan.cursor
    while True:
        lock.ensure()
        try:
            outcome = await evaluate_page(job, plan, cursor, judges, slots, tally.counts)
        except DataContractBroken as broken:
            if isinstance(broken.summary, ContractSummary):
                tally.add(PageCounts(), broken.summary)
            raise
        tally.add(outcome.counts, outcome.contract)
        tally.add_sampling(outcome)
        logger.info(
            "page done: pulled=%d quarantined=%d scores=%d (run total pulled=%d)",
            outcome.counts.pulled,
            outcome.counts.quarantined,
            outcome.counts.scored,
            tally.counts.pulled,
        )
        if outcome.last is None or not outcome.full:
            return
        cursor = outcome.last


@flow(name="evaluate_recent", log_prints=False)
async def evaluate_recent(
    job: EvalJob, until: datetime | None = None, kind: RunKind = "scheduled"
) -> RunSummary:
    """Evaluate logs newer than the deployment's watermark and older than now minus the lag."""
    logger = get_run_logger()
    engine = scores_engine()
    window_end = run_window_end(job, until)
    with deployment_lock(engine, job.deployment) as lock:
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
        tally = RunTally()
        rollup_window = (rollup_start(engine, job.deployment, plan.start), plan.until)
        async with judging(job, engine, plan.run_id) as judged:
            try:
                outside_the_window(job, engine, plan.run_id, tally)
                await run_pages(job, plan, judged, tally, lock)
                if tally.counts.pulled == 0 and job.quality.expect_traffic:
                    tally.contract.batch_failures.append(
                        "no logs in the window although quality.expect_traffic is set"
                    )
            except BaseException as exc:
                hook = (
                    notify_contract_broken(job, get_settings(), str(exc), flow_run_link())
                    if isinstance(exc, DataContractBroken)
                    else None
                )
                details = run_details(job, judged, tally)
                fail_run(engine, plan.run_id, exc, details, hook, rollup_window)
                deliver(engine)
                raise
        details = run_details(job, judged, tally)
        hook = notify_on_finish(job, get_settings(), datetime.now(UTC), flow_run_link())
        summary = finish_run(
            engine, plan.run_id, "completed", details=details, then=hook, rollups=rollup_window
        )
        await publish_contract_artifact(summary.deployment, tally.contract)
        await publish_run_artifacts(engine, summary)
        deliver(engine)
        return summary


def outside_the_window(job: EvalJob, engine: sa.Engine, run_id: str, tally: RunTally) -> None:
    """Logs no window will read: stamped in the future, without a timestamp (both quarantined),
    or arrived behind the watermark (counted, with the backfill that scores them)."""
    logger = get_run_logger()
    future = pipeline.quarantine_future_logs(job, engine, run_id, datetime.now(UTC))
    if future.quarantined:
        logger.warning("%d future-stamped logs were quarantined", future.quarantined)
    undated = pipeline.quarantine_undated_logs(job, engine, run_id)
    if undated.quarantined:
        logger.warning("%d logs without a timestamp were quarantined", undated.quarantined)
    tally.late = pipeline.late_logs(job, engine, run_id)
    if tally.late:
        logger.warning(
            "%d logs arrived after their window was read (later than the lag); score them with: %s",
            tally.late["count"],
            tally.late["remedy"],
        )


def flow_run_link_for(flow_run_id: str | None) -> str | None:
    """A flow run in the Prefect UI, when a UI URL is known (PREFECT_UI_URL)."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base and flow_run_id else None


def flow_run_link() -> str | None:
    return flow_run_link_for(flow_run.id)


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


def run_details(job: EvalJob, judged: Judging, tally: RunTally) -> dict[str, Any]:
    """What the run record keeps beyond counts: the contract's findings, the sample (per
    evaluator and stratum), what the budget left unscored, spend, and judge health."""
    details: dict[str, Any] = {"contract": tally.contract.model_dump()}
    if tally.late:
        details["late"] = tally.late
    judges, ledger = judged.judges, judged.ledger
    if judges is not None:
        details["sampling"] = {
            "rule": job.sampling.model_dump(),
            "strata": tally.strata,
            "unscored": tally.unscored,
            "duplicates_copied": tally.copied,
        }
        details["judges"] = judges.report()
    if ledger is not None:
        details["spend"] = ledger.report().model_dump()
        gate = pipeline.ledger_gate(judges)
        if gate is not None and gate.unstored_usd:
            # Paid for, but the page failed before storing them: judged again on the rerun.
            details["spend"]["unstored_usd"] = gate.unstored_usd
    return details


def require_prices(job: EvalJob, models: list[str]) -> None:
    """Unknown cost never counts as zero: a judge model must have a price to be paid for."""
    unpriced = [m for m in models if price_for(m, job.budget.prices) is None]
    if unpriced:
        raise ConfigError(
            f"no known price for judge model(s) {', '.join(unpriced)}: litellm's price map "
            "does not list them; set budget.prices (USD per million input and output tokens)"
        )


async def publish_contract_artifact(deployment: str, contract: ContractSummary) -> None:
    """The contract's findings in the Prefect UI, beside the run."""
    rows = [
        {"expectation": label, "unexpected_rows": n} for label, n in contract.unexpected.items()
    ]
    rows += [
        {"expectation": failure, "unexpected_rows": "batch"} for failure in contract.batch_failures
    ]
    description = (
        f"Data contract for {deployment}: {contract.batches} batches, {contract.rows:,} logs, "
        f"{contract.invalid_rows:,} invalid; {contract.expectations_evaluated:,} expectation "
        f"checks, {contract.expectations_failed:,} failed."
    )
    await acreate_table_artifact(
        table=rows or [{"expectation": "all passed", "unexpected_rows": 0}],
        key=f"{deployment.replace('_', '-')}-data-contract",
        description=description,
    )
