"""Which units a run has to evaluate (complete as seen at `until`, not evaluated yet or gained
items since), and the units themselves, read from the source and assembled."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.heuristics.unit_checks import UnitEvaluator
from evaluators.judges.sessions import UnitJudge
from evaluators.records import LogRecord
from evaluators.unit_records import Session, Trace, UnitKind
from tasks.config import EvalJob
from tasks.sessions.assemble import UnitReject, assemble_sessions, assemble_traces_of
from tasks.store.sql import query
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import UNIT_SLOTS, UnitEnd, completed_units, rows_by_unit

#: Units read and written per transaction.
CHUNK = 200
UNIT_KINDS: tuple[UnitKind, ...] = ("session", "trace")


class Unit(BaseModel):
    """An assembled session or trace, with what its scores carry."""

    kind: UnitKind
    unit: Session | Trace
    unit_id: str
    last_ts: datetime
    items: int
    segment: dict[str, str | None]


def evaluators_of(job: EvalJob, kind: UnitKind) -> list[UnitEvaluator]:
    built = (cfg.build() for cfg in job.evaluators)
    return [e for e in built if isinstance(e, UnitEvaluator) and e.unit == kind]


def session_evaluators(job: EvalJob) -> list[UnitEvaluator]:
    return [e for kind in UNIT_KINDS for e in evaluators_of(job, kind)]


def session_judges(job: EvalJob) -> list[UnitJudge]:
    """Every session and trace judge of the job (their routes join the run's runtime)."""
    return [e for e in session_evaluators(job) if isinstance(e, UnitJudge)]


def assemble(
    kind: UnitKind, records: list[LogRecord], max_steps: int
) -> tuple[list[Unit], list[UnitReject], dict[str, str]]:
    """Units of these records, the ones refused (with why), and the ones with nothing to
    evaluate (a trace with no LLM call). Segments come from the unit's first LLM call."""
    calls = sorted((r for r in records if r.is_llm_call), key=lambda r: (r.ts, r.id))
    key = UNIT_SLOTS[kind]
    first: dict[str, LogRecord] = {}
    for record in calls:
        first.setdefault(getattr(record, key) or "", record)
    last: dict[str, datetime] = {}
    for record in records:
        unit_id = getattr(record, key) or ""
        last[unit_id] = max(record.ts, last.get(unit_id, record.ts))
    skipped: dict[str, str] = {}
    found: list[Session | Trace]
    if kind == "session":
        # A conversation's turns are its LLM calls; its tool spans belong to traces.
        sessions, rejects = assemble_sessions(calls)
        found = list(sessions)
    else:
        traces, rejects = assemble_traces_of(records, max_steps)
        found = []
        for trace in traces:
            if trace.llm_calls:
                found.append(trace)
            else:
                skipped[trace.trace_id] = "no LLM call in this trace: nothing to evaluate"
    units = []
    for unit in found:
        unit_id = unit.session_id if isinstance(unit, Session) else unit.trace_id
        items = len(unit.turns) if isinstance(unit, Session) else len(unit.steps)
        units.append(Unit(kind=kind, unit=unit, unit_id=unit_id, last_ts=last[unit_id],
                          items=items, segment=first[unit_id].segment()))  # fmt: skip
    return units, rejects, skipped


def evaluated_units(
    engine: sa.Engine, deployment: str, kind: UnitKind, ids: list[str]
) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            row.unit_id: row
            for row in conn.execute(
                sa.text(query("units", "evaluated_units")),
                {"deployment": deployment, "unit_kind": kind, "unit_ids": ids},
            )
        }


class Pending(BaseModel):
    """The units of a kind complete as seen at `until`, and what a run has to do with them."""

    by_id: dict[str, dict[str, Any]]  # unit id -> its last item's time, as found
    known: dict[str, Any]  # unit id -> its evaluation record, when it was evaluated
    late: list[str]  # evaluated units that gained items since
    revisions: dict[str, int]  # late units to evaluate again (rescore_late) -> next revision

    @property
    def todo(self) -> list[str]:
        return [u for u in self.by_id if u not in self.known] + list(self.revisions)


def find_pending(
    job: EvalJob,
    kind: UnitKind,
    scores_db: sa.Engine,
    source_db: sa.Engine,
    since: datetime,
    until: datetime,
) -> Pending:
    settings = job.sessions
    end = UnitEnd(
        column=settings.end.column if settings.end and kind == "session" else None,
        values=settings.end.values if settings.end and kind == "session" else [],
        root_span=kind == "trace" and settings.end_on_root_span,
    )
    with source_db.connect() as conn:
        found = completed_units(conn, job.source, kind, since, until, settings.idle, end)
    known = evaluated_units(scores_db, job.deployment, kind, [c["unit_id"] for c in found])
    by_id = {c["unit_id"]: c for c in found}
    late = [u for u, c in by_id.items() if u in known and c["last_ts"] > known[u].last_ts]
    revisions = {u: known[u].revision + 1 for u in late} if settings.rescore_late else {}
    return Pending(by_id=by_id, known=known, late=late, revisions=revisions)


def read_units(
    job: EvalJob,
    kind: UnitKind,
    source_db: sa.Engine,
    ids: list[str],
    until: datetime,
    sizes: dict[str, int] | None = None,
) -> tuple[list[Unit], list[UnitReject], dict[str, str]]:
    """These units as of `until`, assembled; the refused ones; the ones with nothing to judge.
    A unit known (`sizes`) to hold more than `sessions.max_steps` items is refused unread: one
    runaway conversation or agent loop cannot fill memory. Bad rows are the log pass's
    business (quarantined there): a unit is its good items."""
    limit = job.sessions.max_steps
    oversized = [
        UnitReject(kind=kind, unit_id=u, reasons=[
            f"{sizes[u]:,} items, over sessions.max_steps ({limit:,}): not read"])
        for u in ids if sizes and sizes.get(u, 0) > limit
    ]  # fmt: skip
    refused = {r.unit_id for r in oversized}
    ids = [u for u in ids if u not in refused]
    raw = []
    if ids:
        with source_db.connect() as conn:
            raw = rows_by_unit(conn, job.source, kind, ids, until)
    records, _bad_rows = normalize_rows(raw, job.source.format)
    units, rejects, skipped = assemble(kind, records, limit)
    accounted = {u.unit_id for u in units} | {r.unit_id for r in rejects} | set(skipped)
    for unit_id in ids:
        if unit_id not in accounted:  # recorded, or every run would look at it again
            skipped[unit_id] = (f"no readable LLM call in this {kind} (its rows are "
                                "quarantined, or none is an LLM call)")  # fmt: skip
    return units, [*oversized, *rejects], skipped
