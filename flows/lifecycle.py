"""The run lifecycle: one for every kind of run.

    async with run_lifecycle(job, KINDS["scheduled"], window_end=...) as run:
        await run.pages()            # or: await run.process(rows), for rows found another way
    return run.summary

It owns, in this order: the lock (the deployment's, or a backfill run's liveness lock), the run
record, redaction of the run's log lines, the judge runtime behind the spend ledger (paid judges
need a price; slots of each judge model's global limit), the page loop and its counters, then
finish or fail, alert rules and the outbox, Slack delivery and the Prefect artifacts. A run's
*kind* decides, here and nowhere else, whether the watermark moves, whether already-scored logs
are skipped, whether the data contract can stop the run, and whether it notifies.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, TypeVar

import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict

from evaluators.judges.client import Endpoint, JudgeRuntime
from evaluators.judges.pricing import price_for
from flows.artifacts import publish_run_artifacts
from tasks import pipeline, redact
from tasks.alerts.notify import (
    NO_TRAFFIC,
    deliver_pending,
    notify_contract_broken,
    notify_on_finish,
)
from tasks.budget.ledger import Ledger, LedgerGate
from tasks.budget.sampling import merge_strata
from tasks.budget.slots import judge_slots, lease_slots
from tasks.config import EvalJob
from tasks.contract.suite import ContractSummary
from tasks.errors import ConfigError, DataContractBroken, TransientError
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


# -- one page, as a Prefect task ------------------------------------------------------------
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


# -- the run's parts --------------------------------------------------------------------
class RunTally:
    """What a run has done so far, kept outside the page loop so a failure can still report."""

    def __init__(self) -> None:
        self.counts = PageCounts()
        self.contract = ContractSummary()
        self.strata: dict[str, dict[str, dict[str, int]]] = {}
        self.unscored: dict[str, dict[str, int]] = {}
        self.copied = 0
        self.held_elsewhere = 0
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
        self.held_elsewhere += outcome.held_elsewhere


class Judging(NamedTuple):
    judges: JudgeRuntime | None
    ledger: Ledger | None
    models: list[str]


@asynccontextmanager
async def judging(
    job: EvalJob, engine: sa.Engine, budget_key: str, targets: Sequence[Endpoint] = ()
) -> AsyncIterator[Judging]:
    """The judge runtime of a run, behind the spend ledger of `budget_key` when the job has
    caps (a backfill's chunks share their parent's key, so its budget covers them all). A
    check's prompt target (`targets`) calls through the same runtime and ledger.
    Every run passes through here, so this is where its log lines start being redacted."""
    redact.refresh()
    redact.install_log_redaction()
    from tasks.sessions import session_judges

    evaluators = pipeline.build_evaluators(job)
    # Session judges call through the same runtime and ledger as the log judges.
    targets = [*targets, *(j.route.primary for j in session_judges(job))]
    models = sorted({*pipeline.judge_models(evaluators), *(t.model for t in targets)})
    ledger = (
        Ledger(engine, job.deployment, budget_key, job.budget)
        if models and job.budget.capped
        else None
    )
    gate = LedgerGate(ledger) if ledger else None
    judges = (
        JudgeRuntime(job.judge_settings(), gate=gate, env=pipeline.judge_env(evaluators, targets))
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


T = TypeVar("T")
#: Waits before the reads outside the page loop are tried again (as a page's task retries).
OUTSIDE_RETRY_DELAYS_S = (2.0, 10.0)


def retried(action: Callable[[], T]) -> T:
    """A warehouse read outside the page loop, retried like a page when the connection drops
    (a failover, an idle-session killer): the reads are idempotent, their quarantine upserts."""
    for delay in (*OUTSIDE_RETRY_DELAYS_S, None):
        try:
            return action()
        except (TransientError, sa.exc.OperationalError, sa.exc.InterfaceError):
            if delay is None:
                raise
            get_run_logger().warning("a warehouse read failed; retrying in %.0f s", delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def outside_the_window(job: EvalJob, engine: sa.Engine, run_id: str, tally: RunTally) -> None:
    """Logs no window will read: stamped in the future, without a timestamp (both quarantined),
    or arrived behind the watermark (counted, with the backfill that scores them)."""
    logger = get_run_logger()
    future = retried(
        lambda: pipeline.quarantine_future_logs(job, engine, run_id, datetime.now(UTC))
    )
    if future.quarantined:
        logger.warning("%d future-stamped logs were quarantined", future.quarantined)
    undated = retried(lambda: pipeline.quarantine_undated_logs(job, engine, run_id))
    if undated.quarantined:
        logger.warning("%d logs without a timestamp were quarantined", undated.quarantined)
    tally.late = retried(lambda: pipeline.late_logs(job, engine, run_id))
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


def run_details(
    job: EvalJob, judged: Judging, tally: RunTally, run_id: str | None = None
) -> dict[str, Any]:
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
            "left_to_other_runs": tally.held_elsewhere,
        }
        details["judges"] = judges.report()
    if ledger is not None:
        details["spend"] = ledger.report().model_dump()
        gate = pipeline.ledger_gate(judges)
        unstored = gate.unstored_usd if gate is not None else 0.0
        if unstored:
            # Paid for, but the page failed before storing them: judged again on the rerun.
            details["spend"]["unstored_usd"] = unstored
        if judges is not None and run_id is not None and ledger.run_id != run_id:
            details["spend"] = own_spend(details["spend"], judges, unstored)
    return details


def own_spend(shared: dict[str, Any], judges: Any, unstored: float) -> dict[str, Any]:
    """A backfill chunk's spend: the ledger row it settles on is the whole backfill's (one cap
    across chunks), so the chunk reports its own calls, cost and refusals, and the budget's
    totals so far beside them under `budget_*`."""
    stats = list(judges.stats.values())
    return {
        **shared,
        "budget_spent_usd": shared["run_spent_usd"],
        "budget_calls": shared["run_calls"],
        "budget_refused": shared["run_refused"],
        "run_spent_usd": max(0.0, sum(s.cost_usd for s in stats) - unstored),
        "run_calls": sum(s.calls for s in stats),
        "run_refused": sum(s.budget_refusals for s in stats),
    }


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
        {"expectation": redact.redact(failure), "unexpected_rows": "batch"}
        for failure in contract.batch_failures
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


# -- the lifecycle ----------------------------------------------------------------------
KindName = Literal["scheduled", "manual", "backfill", "replay", "check"]


class Kind(BaseModel):
    """What kind of run this is decides how it treats state it shares with other runs."""

    model_config = ConfigDict(frozen=True)

    name: KindName
    moves_watermark: bool  # consumes its window: the next run starts after it
    enforces_contract: bool  # too many invalid logs stop the run
    exclusive: bool  # holds the deployment's lock (else a liveness lock of its own)
    notifies: bool  # evaluates alert rules and posts the summary
    probes_outside_window: bool  # looks for future-stamped, undated and late logs
    reads_source: bool = True  # its input comes from the job's warehouse source


KINDS: dict[str, Kind] = {
    "scheduled": Kind(name="scheduled", moves_watermark=True,
                         enforces_contract=True, exclusive=True, notifies=True,
                         probes_outside_window=True),
    "manual": Kind(name="manual", moves_watermark=True,
                      enforces_contract=True, exclusive=True, notifies=True,
                      probes_outside_window=True),
    "backfill": Kind(name="backfill", moves_watermark=False,
                        enforces_contract=True, exclusive=False, notifies=False,
                        probes_outside_window=False),
    "replay": Kind(name="replay", moves_watermark=False,
                      enforces_contract=False, exclusive=True, notifies=False,
                      probes_outside_window=False),
    # A dataset check: items and a target's outputs instead of the warehouse; a rerun of the
    # same experiment scores only what is missing.
    "check": Kind(name="check", moves_watermark=False,
                     enforces_contract=False, exclusive=True, notifies=False,
                     probes_outside_window=False, reads_source=False),
}  # fmt: skip


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

    async def pages(self) -> None:
        """Every keyset page of the plan's window."""
        logger = get_run_logger()
        slots = await self.slots()
        cursor = self.plan.cursor
        while True:
            self.lock.ensure()
            try:
                outcome = await evaluate_page(
                    self.job, self.plan, cursor, self.judged.judges, slots, self.tally.counts
                )
            except DataContractBroken as broken:
                if isinstance(broken.summary, ContractSummary):
                    self.tally.add(PageCounts(), broken.summary)
                raise
            self.tally.add(outcome.counts, outcome.contract)
            self.tally.add_sampling(outcome)
            logger.info(
                "page done: pulled=%d quarantined=%d scores=%d (run total pulled=%d)",
                outcome.counts.pulled,
                outcome.counts.quarantined,
                outcome.counts.scored,
                self.tally.counts.pulled,
            )
            if outcome.last is None or not outcome.full:
                return
            cursor = outcome.last

    async def sessions(self) -> None:
        """Score the sessions and traces complete by the end of this run's window and not
        scored yet (however many windows their items span), once each."""
        from tasks.sessions import UNIT_KINDS, evaluate_completed_units, evaluators_of

        for kind in UNIT_KINDS:
            if not evaluators_of(self.job, kind):
                continue
            self.lock.ensure()
            async with judge_slots(await self.slots()):
                # A backfill chunk looks at units that completed in its window; a first run as
                # far back as its window; others `lookback`.
                since = (
                    self.plan.start
                    if self.plan.backfill
                    else min(self.plan.start, self.plan.until - self.job.sessions.lookback)
                )
                outcome = await evaluate_completed_units(
                    self.job, kind, scores_engine(), pipeline.source_engine(self.job.source),
                    self.plan.run_id, self.plan.until, self.judged.judges, since,
                    self.plan.backfill,
                )  # fmt: skip
            self.details[f"{kind}s"] = outcome.model_dump(mode="json", exclude={"first_ended"})
            if outcome.first_ended is not None:
                self.units_from = min(outcome.first_ended, self.units_from or outcome.first_ended)
            if outcome.note:
                get_run_logger().warning("%ss: %s", kind, outcome.note)
            get_run_logger().info(
                "%ss: %d evaluated, %d rescored, %d quarantined, %d skipped, %d late item(s)",
                kind, outcome.evaluated, outcome.rescored, len(outcome.rejected),
                len(outcome.skipped), outcome.late_items,
            )  # fmt: skip

    async def process(self, rows: list[dict[str, Any]]) -> pipeline.PageOutcome:
        """Rows found another way (a replay's quarantined ids), as one page of this run."""
        self.lock.ensure()
        slots = await self.slots()
        async with judge_slots(slots):
            outcome = await pipeline.process_rows(
                self.job, scores_engine(), self.plan.run_id, rows,
                pipeline.build_evaluators(self.job), self.judged.judges, self.tally.counts,
                cursor=None, enforce_contract=self.kind.enforces_contract,
            )  # fmt: skip
        self.tally.add(outcome.counts, outcome.contract)
        self.tally.add_sampling(outcome)
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
    if kind.name == "backfill":
        assert start is not None
        start_backfill_run(
            engine, run_id, job.deployment, start, end, evaluators, flow_run.id, parent_run_id
        )
        # `end` is exclusive for chunks; keyset reads are inclusive of `until`.
        return RunPlan(run_id=run_id, deployment=job.deployment, cursor=None, start=start,
                       until=end - timedelta(microseconds=1), backfill=True)  # fmt: skip
    return start_run(
        engine, job.deployment, end, job.source.initial_lookback,
        kind=kind.name, flow_run_id=flow_run.id, run_id=run_id,
    )  # fmt: skip


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
                job = await asyncio.to_thread(pipeline.fitted_job, job)
        except BaseException as exc:  # a missing column is a failed run, recorded as such
            fail_run(engine, plan.run_id, exc, {})
            raise
        logger.info(
            "%s run %s of %s: logs after %s up to %s", kind.name, plan.run_id, job.deployment,
            plan.cursor.ts if plan.cursor else plan.start, plan.until,
        )  # fmt: skip
        # The hours whose score rollups the run refreshes as it closes: its window (hourly runs
        # from where an earlier run that died left off), or, for a replay, the hours it read.
        rollups: tuple[datetime, datetime] | None = (
            (rollup_start(engine, job.deployment, plan.start), plan.until)
            if kind.moves_watermark
            else (plan.start, plan.until + timedelta(microseconds=1))
            if kind.name == "backfill"
            else None
        )
        async with judging(job, engine, budget_key or plan.run_id, targets) as judged:
            run = Run(job, kind, plan, judged, lock)
            try:
                if kind.probes_outside_window:
                    outside_the_window(job, engine, plan.run_id, run.tally)
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
