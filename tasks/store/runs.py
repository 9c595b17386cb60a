"""Run lifecycle in `assay.eval_runs`: one run per deployment at a time, start, finish, summary."""

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.errors import AssayError, LockLost, RunBusy
from tasks.redact import redact, redact_optional
from tasks.store.rollups import refresh_score_rollups
from tasks.store.rows import Cursor
from tasks.store.sanitize import storable
from tasks.store.sql import query

RunKind = Literal["scheduled", "manual", "backfill", "replay", "check"]


class HeldLock:
    """A session advisory lock held on its own connection, checked between pages: a run whose
    lock went with its connection stops, marked failed, instead of continuing unlocked."""

    def __init__(self, conn: sa.Connection, what: str) -> None:
        self.conn, self.what = conn, what

    def ensure(self) -> None:
        try:
            held = self.conn.execute(sa.text(query("runs", "holds_advisory_locks"))).scalar_one()
            self.conn.commit()
        except sa.exc.SQLAlchemyError:
            held = False
        if not held:
            raise LockLost(
                f"the {self.what} lock was lost with its database connection; the run stops "
                "here rather than go on unlocked (rerun it: nothing written is lost)"
            )

    def release(self, statement: str, params: dict[str, Any]) -> None:
        # A dead connection released the lock already.
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self.conn.execute(sa.text(statement), params)
            self.conn.commit()


class RunPlan(BaseModel):
    """What a run will read: after `cursor` (or from `start` on a first run) up to `until`."""

    run_id: str
    deployment: str
    cursor: Cursor | None
    start: datetime
    until: datetime


class EvaluatorResult(BaseModel):
    evaluator: str
    evaluator_version: str
    n: int
    ok: int
    passed: int
    errors: int
    skipped: int
    mean_score: float | None
    cost_usd: float = 0.0
    unknown_cost: int = 0
    judge_models: str | None = None

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ok if self.ok else None


class RunSummary(BaseModel):
    run_id: str
    deployment: str
    kind: str
    status: str
    window_start: datetime | None
    window_end: datetime
    started_at: datetime
    finished_at: datetime | None
    pulled: int
    normalized: int
    quarantined: int
    scored: int
    errors: int
    skipped: int
    error: str | None
    details: dict[str, Any] = {}
    evaluators: list[EvaluatorResult] = []
    # What the run had to say (Slack messages as plain text), whether or not Slack is set up.
    notifications: list[dict[str, str]] = []


@contextmanager
def deployment_lock(engine: sa.Engine, deployment: str) -> Iterator[HeldLock]:
    """Hold a session advisory lock for the whole run; it dies with the process if killed."""
    with engine.connect() as conn:
        got = conn.execute(
            sa.text(query("runs", "try_lock_deployment")), {"deployment": deployment}
        )
        if not got.scalar_one():
            raise RunBusy(f"another run of {deployment!r} is in progress; try again when it ends")
        conn.commit()
        lock = HeldLock(conn, f"deployment {deployment!r}")
        try:
            yield lock
        finally:
            lock.release(query("runs", "unlock_deployment"), {"deployment": deployment})


def mark_stopped(engine: sa.Engine, deployment: str) -> None:
    """Record the deployment's running run as stopped (a process exiting on a signal)."""
    with engine.begin() as conn:
        conn.execute(sa.text(query("runs", "mark_stopped")), {"deployment": deployment})


def release_dead_reservations(conn: sa.Connection, deployment: str) -> None:
    """Runs found dead (just marked abandoned) free what they had reserved but never spent."""
    conn.execute(sa.text(query("budget", "release_dead_reservations")), {"deployment": deployment})


def start_run(
    engine: sa.Engine,
    deployment: str,
    until: datetime,
    initial_lookback: timedelta,
    kind: RunKind = "manual",
    flow_run_id: str | None = None,
    run_id: str | None = None,
) -> RunPlan:
    """Record a new run and plan its window from the watermark. Call under `deployment_lock`."""
    run_id = run_id or str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(sa.text(query("runs", "abandon_stale_runs")), {"deployment": deployment})
        conn.execute(
            sa.text(query("budget", "release_dead_reservations")), {"deployment": deployment}
        )
        mark = conn.execute(
            sa.text(query("runs", "get_watermark")), {"deployment": deployment}
        ).one_or_none()
        cursor = Cursor(ts=mark.ts, log_id=mark.log_id) if mark else None
        start = cursor.ts if cursor else until - initial_lookback
        conn.execute(
            sa.text(query("runs", "insert_run")),
            {
                "run_id": run_id,
                "deployment": deployment,
                "kind": kind,
                "window_start": start,
                "window_end": until,
                "flow_run_id": flow_run_id,
            },
        )
    return RunPlan(run_id=run_id, deployment=deployment, cursor=cursor, start=start, until=until)


def finish_run(
    engine: sa.Engine,
    run_id: str,
    status: Literal["completed", "failed"],
    error: str | None = None,
    details: dict[str, Any] | None = None,
    then: Callable[[sa.Connection, "RunSummary"], None] | None = None,
    rollups: tuple[datetime, datetime] | None = None,
) -> RunSummary:
    """Close the run record; `then` runs in the same transaction (alert state, the outbox), so
    the run's outcome and what it has to say are committed together or not at all. The score
    rollups of the hours in `rollups` are recomputed in it too."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(query("runs", "finish_run")),
            {
                "run_id": run_id,
                "status": status,
                "error": redact_optional(error),
                "details": redact(
                    json.dumps(
                        storable(details or {}, limit=10_000, max_items=100_000, max_depth=16)
                    )
                ),
            },
        ).one()
        if rollups is not None:
            refresh_score_rollups(conn, row.deployment, *rollups)
        results = conn.execute(sa.text(query("runs", "evaluator_results")), {"run_id": run_id})
        evaluators = [EvaluatorResult.model_validate(r._asdict()) for r in results]
        fields = row._asdict()
        fields["run_id"] = str(fields["run_id"])
        summary = RunSummary(**fields, evaluators=evaluators)
        if then is not None:
            then(conn, summary)
    return summary


def rollup_start(engine: sa.Engine, deployment: str, start: datetime) -> datetime:
    """Where this run's rollup refresh begins: its window, or earlier if runs since the last
    completed one stopped before refreshing theirs."""
    with engine.connect() as conn:
        earliest = conn.execute(
            sa.text(query("runs", "unrefreshed_since")), {"deployment": deployment}
        ).scalar_one_or_none()
    return min(start, earliest) if earliest is not None else start


def planned_window(
    engine: sa.Engine, job: Any, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The window the next run would read, unless `start`/`end` are given."""
    from datetime import UTC

    end = end or datetime.now(UTC) - job.source.lag
    if start is None:
        with engine.connect() as conn:
            mark = conn.execute(
                sa.text(query("runs", "get_watermark")), {"deployment": job.deployment}
            ).one_or_none()
        start = mark.ts if mark else end - job.source.initial_lookback
    if start >= end:
        raise AssayError(f"the window is empty: start {start} is not before end {end}")
    return start, end


def start_backfill_run(
    engine: sa.Engine,
    run_id: str,
    deployment: str,
    start: datetime,
    end: datetime,
    evaluators: list[str],
    flow_run_id: str | None = None,
    parent_run_id: str | None = None,
) -> None:
    """Record a backfill run (a parent, or one chunk of one) under `run_alive`; earlier backfill
    runs whose process died are marked abandoned first. Backfills never touch the watermark."""
    with engine.begin() as conn:
        conn.execute(sa.text(query("runs", "abandon_dead_backfills")), {"deployment": deployment})
        conn.execute(
            sa.text(query("budget", "release_dead_reservations")), {"deployment": deployment}
        )
        conn.execute(
            sa.text(query("runs", "insert_backfill_run")),
            {
                "run_id": run_id,
                "deployment": deployment,
                "window_start": start,
                "window_end": end,
                "flow_run_id": flow_run_id,
                "parent_run_id": parent_run_id,
                "evaluators": evaluators,
            },
        )


@contextmanager
def run_alive(engine: sa.Engine, run_id: str) -> Iterator[HeldLock]:
    """Hold the run's liveness lock while it works; if the process dies, so does the lock, and
    the next backfill of the deployment marks the run abandoned."""
    with engine.connect() as conn:
        conn.execute(sa.text(query("runs", "hold_run_alive")), {"run_id": run_id})
        conn.commit()
        lock = HeldLock(conn, f"run {run_id} liveness")
        try:
            yield lock
        finally:
            lock.release(query("runs", "release_run_alive"), {"run_id": run_id})
            conn.commit()


def sum_children(engine: sa.Engine, run_id: str) -> dict[str, int]:
    """Add a backfill's chunk counters up into its parent; returns what the chunks left
    unscored per evaluator (for the parent's summary)."""
    with engine.begin() as conn:
        conn.execute(sa.text(query("runs", "sum_children")), {"run_id": run_id})
        rows = conn.execute(sa.text(query("runs", "children_unscored")), {"run_id": run_id})
        return {row.evaluator: row.unscored for row in rows if row.unscored}


def failed_run_since(engine: sa.Engine, deployment: str, since: datetime) -> str | None:
    """The id of the deployment's newest run started since `since` that failed, if any."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(query("runs", "failed_run_since")), {"deployment": deployment, "since": since}
        ).scalar_one_or_none()
