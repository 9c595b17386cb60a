"""The run lifecycle: one for every kind of run.

    async with run_lifecycle(job, KINDS["scheduled"], window_end=...) as run:
        await run.pages()            # or: await run.process(rows), for rows found another way
        await run.sessions()
    return run.summary

It owns, in this order: the lock (the deployment's, or a backfill run's liveness lock), the run
record, redaction of the run's log lines, the judge runtime behind the spend ledger (paid judges
need a price; slots of each judge model's global limit), the page loop and its counters, then
finish or fail, alert rules and the outbox, Slack delivery and the Prefect artifacts. A run's
*kind* (`tasks/run/kinds.py`) decides whether the watermark moves, whether already-scored logs
are skipped, whether the data contract can stop the run, and whether it notifies.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prefect import get_run_logger
from prefect.runtime import flow_run

from evaluators.judges.client import Endpoint
from tasks.alerts.compose import NO_TRAFFIC
from tasks.alerts.delivery import deliver
from tasks.alerts.notify import notify_contract_broken, notify_on_finish
from tasks.budget.slots import judge_slots, lease_slots
from tasks.config import EvalJob, build_evaluators
from tasks.contract.suite import ContractSummary
from tasks.errors import DataContractBroken
from tasks.run.artifacts import publish_contract_artifact, publish_run_artifacts
from tasks.run.details import run_details
from tasks.run.judging import Judging, judging, require_prices
from tasks.run.kinds import Kind
from tasks.run.links import flow_run_link
from tasks.run.page import PageContext, PageOutcome, process_rows, walk_pages
from tasks.run.probes import outside_the_window
from tasks.run.shell import evaluate_page, evaluate_units
from tasks.run.tally import RunTally
from tasks.sessions import UNIT_KINDS, evaluators_of
from tasks.settings import get_settings
from tasks.store.db import scores_engine
from tasks.store.persist import PageCounts
from tasks.store.rows import Cursor
from tasks.store.runs import (
    HeldLock,
    RunPlan,
    RunSummary,
    deployment_lock,
    finish_run,
    rollup_start,
    run_alive,
    start_backfill_run,
    start_run,
)
from tasks.warehouse.connect import fitted_job


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


class Run:
    """A run in progress: its plan, judges, counters and lock; the body drives its pages."""

    def __init__(
        self, job: EvalJob, kind: Kind, plan: RunPlan, judged: Judging, lock: HeldLock
    ) -> None:
        self.job, self.kind, self.plan, self.judged, self.lock = job, kind, plan, judged, lock
        self.tally = RunTally()
        self.details: dict[str, Any] = {}  # what the body adds to the run record
        self.rollup_hours: tuple[datetime, datetime] | None = None  # a body may name them
        self.units_from: datetime | None = None  # the earliest unit a body scored (its end)
        self.summary: RunSummary | None = None
        self._slots: dict[str, int] | None = None

    async def slots(self) -> dict[str, int]:
        if self._slots is None:
            require_prices(self.job, self.judged.models)
            self._slots = await lease_slots(self.judged.judges, self.judged.models)
        return self._slots

    def context(self) -> PageContext:
        """What the next page of this run needs (with the counts so far)."""
        return PageContext(
            job=self.job, kind=self.kind, run_id=self.plan.run_id, start=self.plan.start,
            until=self.plan.until, evaluators=build_evaluators(self.job),
            scores_db=scores_engine(), judges=self.judged.judges, so_far=self.tally.counts,
        )  # fmt: skip

    def count(self, outcome: PageOutcome) -> None:
        self.tally.add(outcome.counts, outcome.contract)
        self.tally.add_sampling(outcome)

    async def pages(self) -> None:
        """Every keyset page of the plan's window."""
        logger = get_run_logger()
        slots = await self.slots()

        async def step(after: Cursor | None) -> tuple[Cursor | None, bool]:
            self.lock.ensure()
            try:
                outcome = await evaluate_page(self.context(), after, slots)
            except DataContractBroken as broken:
                if isinstance(broken.summary, ContractSummary):
                    self.tally.add(PageCounts(), broken.summary)
                raise
            self.count(outcome)
            logger.info(
                "page done: pulled=%d quarantined=%d scores=%d (run total pulled=%d)",
                outcome.counts.pulled,
                outcome.counts.quarantined,
                outcome.counts.scored,
                self.tally.counts.pulled,
            )
            return outcome.last, outcome.full

        await walk_pages(step, self.plan.cursor)

    async def sessions(self) -> None:
        """Score the sessions and traces complete by the end of this run's window and not
        scored yet (however many windows their items span), once each."""
        logger = get_run_logger()
        for kind in UNIT_KINDS:
            if not evaluators_of(self.job, kind):
                continue
            self.lock.ensure()
            # A run over a fixed window looks at units that completed in it; a first run as
            # far back as its window; others `lookback`.
            since = (
                self.plan.start
                if self.kind.fixed_window
                else min(self.plan.start, self.plan.until - self.job.sessions.lookback)
            )
            outcome = await evaluate_units(self.context(), kind, since, await self.slots())
            self.details[f"{kind}s"] = outcome.model_dump(mode="json", exclude={"first_ended"})
            if outcome.first_ended is not None:
                self.units_from = min(outcome.first_ended, self.units_from or outcome.first_ended)
            if outcome.note:
                logger.warning("%ss: %s", kind, outcome.note)
            logger.info(
                "%ss: %d evaluated, %d rescored, %d quarantined, %d skipped, %d late item(s)",
                kind, outcome.evaluated, outcome.rescored, len(outcome.rejected),
                len(outcome.skipped), outcome.late_items,
            )  # fmt: skip

    async def process(self, rows: list[dict[str, Any]]) -> PageOutcome:
        """Rows found another way (a replay's quarantined ids, a check's items), as one page of
        this run; the watermark never follows them."""
        self.lock.ensure()
        slots = await self.slots()
        async with judge_slots(slots):
            outcome = await process_rows(self.context(), rows, cursor=None)
        self.count(outcome)
        return outcome


@contextmanager
def _locked(kind: Kind, deployment: str, run_id: str) -> Iterator[HeldLock]:
    engine = scores_engine()
    if kind.exclusive:
        with deployment_lock(engine, deployment) as lock:
            yield lock
    else:
        with run_alive(engine, run_id) as lock:
            yield lock


def _start(
    job: EvalJob,
    kind: Kind,
    run_id: str,
    window: tuple[datetime | None, datetime],
    parent_run_id: str | None,
    evaluators: list[str],
) -> RunPlan:
    engine = scores_engine()
    start, end = window
    if kind.fixed_window:
        assert start is not None, "a run over a fixed window needs its start"
        start_backfill_run(
            engine, run_id, job.deployment, start, end, evaluators, flow_run.id, parent_run_id
        )
        # `end` is exclusive for chunks; keyset reads are inclusive of `until`.
        return RunPlan(run_id=run_id, deployment=job.deployment, cursor=None, start=start,
                       until=end - timedelta(microseconds=1))  # fmt: skip
    return start_run(
        engine, job.deployment, end, job.source.initial_lookback,
        kind=kind.name, flow_run_id=flow_run.id, run_id=run_id,
    )  # fmt: skip


def _rollup_hours(
    kind: Kind, engine: sa.Engine, deployment: str, plan: RunPlan
) -> tuple[datetime, datetime] | None:
    """The hours whose score rollups the run refreshes as it closes: its window (hourly runs
    from where an earlier run that died left off), or none (a replay names the hours it read;
    a check has none, a backfill's parent leaves them to its chunks)."""
    if not kind.refreshes_rollups:
        return None
    if kind.moves_watermark:
        return rollup_start(engine, deployment, plan.start), plan.until
    if kind.fixed_window:
        return plan.start, plan.until + timedelta(microseconds=1)
    return None


@asynccontextmanager
async def run_lifecycle(
    job: EvalJob,
    kind: Kind,
    window_end: datetime | None = None,
    start: datetime | None = None,
    budget_key: str | None = None,
    parent_run_id: str | None = None,
    evaluators: list[str] | None = None,
    targets: Sequence[Endpoint] = (),
) -> AsyncIterator[Run]:
    """A run of `job` from lock to artifacts; the body reads and evaluates its input (and a
    check's body calls its prompt target, `targets`, through the run's judge runtime)."""
    logger = get_run_logger()
    engine = scores_engine()
    run_id = str(uuid.uuid4())
    end = window_end or datetime.now(UTC)
    with _locked(kind, job.deployment, run_id) as lock:
        plan = _start(job, kind, run_id, (start, end), parent_run_id, evaluators or [])
        try:
            if kind.reads_source:
                job = await asyncio.to_thread(fitted_job, job)
        except BaseException as exc:  # a missing column is a failed run, recorded as such
            fail_run(engine, plan.run_id, exc, {})
            raise
        logger.info(
            "%s run %s of %s: logs after %s up to %s", kind.name, plan.run_id, job.deployment,
            plan.cursor.ts if plan.cursor else plan.start, plan.until,
        )  # fmt: skip
        rollups = _rollup_hours(kind, engine, job.deployment, plan)
        async with judging(job, engine, budget_key or plan.run_id, targets, kind.spends) as judged:
            run = Run(job, kind, plan, judged, lock)
            try:
                if kind.probes_outside_window:
                    await outside_the_window(job, engine, plan.run_id, run.tally)
                yield run
                quiet = kind.moves_watermark and run.tally.counts.pulled == 0
                if quiet and job.quality.expect_traffic:
                    run.tally.contract.batch_failures.append(NO_TRAFFIC)
                    run.details["no_traffic"] = True
            except BaseException as exc:
                hook = (
                    notify_contract_broken(job, get_settings(), str(exc), flow_run_link())
                    if kind.notifies and isinstance(exc, DataContractBroken)
                    else None
                )
                details = {**run_details(job, judged, run.tally, plan.run_id), **run.details}
                fail_run(engine, plan.run_id, exc, details, hook, run.rollup_hours or rollups)
                if kind.notifies:
                    deliver(engine)
                raise
            details = {**run_details(job, judged, run.tally, plan.run_id), **run.details}
            if parent_run_id is not None:
                details["parent_run_id"] = parent_run_id
            if run.units_from is not None and rollups is not None:
                # A session's score sits at its last turn, which may precede this window.
                rollups = (min(rollups[0], run.units_from), rollups[1])
        hook = (
            notify_on_finish(job, get_settings(), datetime.now(UTC), flow_run_link())
            if kind.notifies
            else None
        )
        run.summary = finish_run(
            engine, plan.run_id, "completed", details=details, then=hook,
            rollups=run.rollup_hours or rollups,
        )  # fmt: skip
    if kind.notifies:
        await publish_contract_artifact(job.deployment, run.tally.contract)
    await publish_run_artifacts(engine, run.summary, evaluators or None)
    if kind.notifies:
        deliver(engine)
