"""Sessions and traces as units of evaluation: a conversation (turns sharing `session_id`) or an
agent run (steps sharing `trace_id`) is evaluated once, when it is complete (no item for
`sessions.idle`, or an end marker logged), by the first run whose window sees it complete,
however many windows its items span. Free unit evaluators score every complete unit; unit
judges a deterministic sample of them (the job's sampling rate and seed, by unit id), through
the run's judge runtime and spend ledger. Scores are keyed by unit kind and id, and
`unit_evaluations` records that a unit was evaluated in the same transaction (with the spend of
its judge calls), so a rerun or a crash-and-rerun evaluates nothing twice. Items that arrive
after their unit was evaluated are counted as late; with `sessions.rescore_late` the unit is
evaluated again as its next revision (its earlier scores move to `unit_score_revisions`)."""

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.base import Score
from evaluators.heuristics.units import UnitEvaluator
from evaluators.judges.builtin import UNSCORED_BUDGET
from evaluators.judges.client import JudgeRuntime
from evaluators.judges.sessions import UnitJudge
from evaluators.records import LogRecord
from evaluators.units import Session, Trace, UnitKind
from tasks.budget.ledger import LedgerGate
from tasks.budget.sampling import stratum_key, stratum_sample
from tasks.config import EvalJob
from tasks.score import MAX_REASON_CHARS, ScoreRow
from tasks.store.persist import copy_scores
from tasks.store.sql import query
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import UNIT_SLOTS, UnitEnd, completed_units, rows_by_unit
from tasks.warehouse.units import UnitReject, assemble_sessions, assemble_traces_of

#: Units read and written per transaction.
CHUNK = 200
UNIT_KINDS: tuple[UnitKind, ...] = ("session", "trace")


class UnitOutcome(BaseModel):
    """What one run did with the units of one kind (run details `sessions` / `traces`)."""

    evaluated: int = 0
    rescored: int = 0  # evaluated again as a new revision (rescore_late)
    judged: int = 0  # unit-judge verdicts (sampled)
    unscored_budget: dict[str, int] = {}  # judge -> sampled units the budget left unjudged
    rejected: dict[str, str] = {}  # unit id -> why it cannot be evaluated (quarantined)
    skipped: dict[str, str] = {}  # unit id -> why there is nothing to evaluate
    incomplete: int = 0  # traces evaluated with a step whose parent never arrived
    late_items: int = 0
    scored: int = 0
    first_ended: datetime | None = None  # for the rollup hours the run refreshes
    note: str | None = None  # why nothing could be looked at


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


def unit_row(
    deployment: str,
    unit: Unit,
    evaluator: UnitEvaluator,
    score: Score,
    run_id: str,
    weight: float = 1.0,
    revision: int = 1,
) -> ScoreRow:
    return ScoreRow(
        deployment=deployment, unit_kind=unit.kind, log_id=unit.unit_id,
        evaluator=evaluator.score_name, evaluator_version=evaluator.evaluator_version,
        log_ts=unit.last_ts, judge_model=score.judge_model, status=score.status,
        score=score.score, passed=score.passed, label=score.label,
        reason=score.reason[:MAX_REASON_CHARS] if score.reason else None,
        cost_usd=score.cost_usd, tokens=score.tokens, latency_ms=score.latency_ms,
        weight=weight, run_id=run_id, unit_revision=revision, **unit.segment,
    )  # fmt: skip


#: (unit id, evaluator, version) a unit already has a score for: a backfill leaves them be.
Present = set[tuple[str, str, str]]


def free_rows(
    deployment: str,
    unit: Unit,
    evaluators: list[UnitEvaluator],
    run_id: str,
    revision: int = 1,
    present: Present | None = None,
) -> list[ScoreRow]:
    rows = []
    for evaluator in evaluators:
        if (unit.unit_id, evaluator.score_name, evaluator.evaluator_version) in (present or ()):
            continue
        try:
            score = evaluator.evaluate(unit.unit)
        except Exception as exc:  # an evaluator bug costs one row, not the run
            score = Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        rows.append(unit_row(deployment, unit, evaluator, score, run_id, revision=revision))
    return rows


def unit_sample(
    job: EvalJob, units: list[Unit], judges: list[UnitJudge]
) -> list[tuple[Unit, UnitJudge, float]]:
    """(unit, judge, weight) of each unit a judge samples: per judge, each stratum's (the job's
    `stratify_by`, read off the unit's first LLM call) lowest inclusion points, the rate's share
    and at least `min_per_stratum`, as for logs."""
    by = list(job.sampling.stratify_by)
    strata: dict[str, list[Unit]] = {}
    for unit in units:
        strata.setdefault(stratum_key(unit.segment, by), []).append(unit)
    work: list[tuple[Unit, UnitJudge, float]] = []
    for judge in judges:
        for members in strata.values():
            by_id = {u.unit_id: u for u in members}
            chosen, weight = stratum_sample(list(by_id), judge.score_name, job.sampling)
            work += [(by_id[u], judge, weight) for u in chosen]
    return work


async def judged_rows(
    job: EvalJob,
    units: list[Unit],
    judges: list[UnitJudge],
    runtime: JudgeRuntime | None,
    run_id: str,
    revisions: dict[str, int],
    present: Present | None = None,
) -> list[ScoreRow]:
    """The unit judges' verdicts on their sample of these units (`unit_sample`), but for those
    `present` already. A refused budget is a skipped row, counted like a log's; a failed call
    an error row: nothing is guessed."""
    work = [(u, j, w) for u, j, w in unit_sample(job, units, judges)
            if (u.unit_id, j.score_name, j.evaluator_version) not in (present or ())]  # fmt: skip

    async def one(unit: Unit, judge: UnitJudge, weight: float) -> ScoreRow:
        if runtime is None:
            score = Score.error("no judge runtime")
        else:
            try:
                score = await judge.judge(unit.unit, runtime)
            except Exception as exc:  # the judge path raised: this unit's error, not the run's
                score = Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        return unit_row(job.deployment, unit, judge, score, run_id, weight,
                        revisions.get(unit.unit_id, 1))  # fmt: skip

    return list(await asyncio.gather(*(one(u, j, w) for u, j, w in work)))


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


def _settle(gate: LedgerGate, settled: list[Any]) -> Callable[[sa.Connection], None]:
    """The spend of these calls, applied in the transaction that stores their verdicts."""
    return lambda conn: gate.ledger.apply(conn, settled)


def _evaluated(
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


def _quarantine_entries(
    kind: UnitKind, rejects: list[UnitReject], last: dict[str, Any]
) -> list[dict[str, Any]]:
    return [{
        "log_id": f"{kind}:{r.unit_id}", "log_ts": last.get(r.unit_id), "stage": "unit",
        "reasons": json.dumps(r.reasons), "expectations": [],
        "raw": json.dumps({"unit_kind": kind, "unit_id": r.unit_id}),
    } for r in rejects]  # fmt: skip


def _present(engine: sa.Engine, deployment: str, kind: UnitKind, ids: list[str]) -> Present:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(query("units", "unit_scores_present")),
            {"deployment": deployment, "unit_kind": kind, "unit_ids": ids},
        )
        return {(r.log_id, r.evaluator, r.evaluator_version) for r in found}


def _unit_record(
    unit_id: str,
    last_ts: datetime,
    revision: int,
    status: str,
    reason: str | None,
    unit: Unit | None,
) -> dict[str, Any]:
    """The `unit_evaluations` row of a unit evaluated, refused or skipped."""
    return {"unit_id": unit_id, "last_ts": last_ts, "status": status, "revision": revision,
            "reason": None if reason is None else reason[:MAX_REASON_CHARS],
            "items": unit.items if unit else 0,
            "cost_usd": unit.unit.cost_usd if unit else None,
            "tokens": unit.unit.tokens if unit else None}  # fmt: skip


class UnitWrite(BaseModel):
    """One chunk's writes, committed together."""

    kind: UnitKind
    rows: list[ScoreRow]
    units: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    rescored: list[str]


def _write(
    engine: sa.Engine,
    deployment: str,
    run_id: str,
    write: UnitWrite,
    also: Callable[[sa.Connection], None] | None,
) -> int:
    """Scores, the record that their units were evaluated (or refused, or skipped), the
    quarantine entries of refused units, and the spend of the judge calls behind the scores,
    in one transaction. A rescored unit's earlier scores move to `unit_score_revisions`."""
    unit = {"deployment": deployment, "unit_kind": write.kind}
    with engine.begin() as conn:
        if also is not None:
            also(conn)
        if write.rescored:
            conn.execute(sa.text(query("units", "archive_unit_scores")),
                         {**unit, "unit_ids": write.rescored})  # fmt: skip
        scored = copy_scores(conn, write.rows)
        if write.units:
            conn.execute(sa.text(query("units", "record_unit")),
                         [{**u, **unit, "run_id": run_id} for u in write.units])  # fmt: skip
        if write.quarantine:
            conn.execute(sa.text(query("persist", "insert_quarantine")),
                         [{**q, "deployment": deployment, "run_id": run_id}
                          for q in write.quarantine])  # fmt: skip
    return scored


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
    known = _evaluated(scores_db, job.deployment, kind, [c["unit_id"] for c in found])
    by_id = {c["unit_id"]: c for c in found}
    late = [u for u, c in by_id.items() if u in known and c["last_ts"] > known[u].last_ts]
    revisions = {u: known[u].revision + 1 for u in late} if settings.rescore_late else {}
    return Pending(by_id=by_id, known=known, late=late, revisions=revisions)


def read_units(
    job: EvalJob, kind: UnitKind, source_db: sa.Engine, ids: list[str], until: datetime
) -> tuple[list[Unit], list[UnitReject], dict[str, str]]:
    """These units as of `until`, assembled; the refused ones; the ones with nothing to judge.
    Bad rows are the log pass's business (quarantined there): a unit is its good items."""
    with source_db.connect() as conn:
        raw = rows_by_unit(conn, job.source, kind, ids, until)
    records, _bad_rows = normalize_rows(raw, job.source.format)
    units, rejects, skipped = assemble(kind, records, job.sessions.max_steps)
    accounted = {u.unit_id for u in units} | {r.unit_id for r in rejects} | set(skipped)
    for unit_id in ids:
        if unit_id not in accounted:  # recorded, or every run would look at it again
            skipped[unit_id] = (f"no readable LLM call in this {kind} (its rows are "
                                "quarantined, or none is an LLM call)")  # fmt: skip
    return units, rejects, skipped


async def evaluate_completed_units(
    job: EvalJob,
    kind: UnitKind,
    scores_db: sa.Engine,
    source_db: sa.Engine,
    run_id: str,
    until: datetime,
    runtime: JudgeRuntime | None = None,
    since: datetime | None = None,
    backfill: bool = False,
) -> UnitOutcome:
    """Evaluate every unit of `kind` complete by `until` (its last item after `since`, by
    default `sessions.lookback` before `until`) that has not been evaluated (or, with
    `rescore_late`, that gained items since), and count late items of the others. A backfill
    looks at every complete unit and scores what it lacks (an evaluator added since)."""
    evaluators = evaluators_of(job, kind)
    outcome = UnitOutcome()
    if not evaluators:
        return outcome
    slot = UNIT_SLOTS[kind]
    if slot not in job.source.column_mapping():
        outcome.note = (
            f"the source has no {slot} column (map one under source.columns): the {kind} "
            "evaluators have nothing to score"
        )
        return outcome
    judges = [e for e in evaluators if isinstance(e, UnitJudge)]
    free = [e for e in evaluators if not isinstance(e, UnitJudge)]
    gate = runtime.gate if runtime is not None and isinstance(runtime.gate, LedgerGate) else None
    since = until - job.sessions.lookback if since is None else since
    pending = await asyncio.to_thread(find_pending, job, kind, scores_db, source_db, since, until)
    by_id, known, late, revisions = pending.by_id, pending.known, pending.late, pending.revisions
    todo = list(pending.by_id) if backfill else pending.todo
    for start in range(0, len(todo), CHUNK):
        ids = todo[start : start + CHUNK]
        units, rejects, skipped = await asyncio.to_thread(
            read_units, job, kind, source_db, ids, until
        )
        present: Present = set()
        if backfill:
            present = await asyncio.to_thread(_present, scores_db, job.deployment, kind, ids)
        rows = [
            row
            for u in units
            for row in free_rows(
                job.deployment, u, free, run_id, revisions.get(u.unit_id, 1), present
            )
        ]
        verdicts = []
        for row in await judged_rows(job, units, judges, runtime, run_id, revisions, present):
            if row.label == UNSCORED_BUDGET:  # counted, not written (as for logs)
                left = outcome.unscored_budget
                left[row.evaluator] = left.get(row.evaluator, 0) + 1
            else:
                verdicts.append(row)
        last = {u: by_id[u]["last_ts"] for u in ids}

        outcomes: list[tuple[str, str, str | None, Unit | None]]
        outcomes = [(u.unit_id, "evaluated", None, u) for u in units]
        outcomes += [(r.unit_id, "rejected", "; ".join(r.reasons), None) for r in rejects]
        outcomes += [(u, "skipped", why, None) for u, why in skipped.items()]
        records_of = [_unit_record(u, last[u], revisions.get(u, 1), status, why, unit)
                      for u, status, why, unit in outcomes]  # fmt: skip
        write = UnitWrite(
            kind=kind, rows=rows + verdicts, units=records_of,
            quarantine=_quarantine_entries(kind, rejects, last),
            rescored=[u for u in ids if u in revisions],
        )  # fmt: skip
        settled = gate.take() if gate is not None else []
        spend = _settle(gate, settled) if gate and settled else None
        outcome.scored += await asyncio.to_thread(
            _write, scores_db, job.deployment, run_id, write, spend
        )
        outcome.evaluated += sum(u.unit_id not in revisions for u in units)
        outcome.rescored += sum(u.unit_id in revisions for u in units)
        outcome.judged += sum(r.status == "ok" for r in verdicts)
        outcome.incomplete += sum(isinstance(u.unit, Trace) and u.unit.incomplete for u in units)
        outcome.rejected.update({r.unit_id: "; ".join(r.reasons) for r in rejects})
        outcome.skipped.update(skipped)
        if units:
            first = min(u.last_ts for u in units)
            outcome.first_ended = min(first, outcome.first_ended or first)
    if late and not job.sessions.rescore_late:
        outcome.late_items = await asyncio.to_thread(
            _count_late, job, kind, scores_db, source_db, [by_id[u] for u in late], known, until
        )
    return outcome


def _count_late(
    job: EvalJob,
    kind: UnitKind,
    scores_db: sa.Engine,
    source_db: sa.Engine,
    late: list[dict[str, Any]],
    known: dict[str, Any],
    until: datetime,
) -> int:
    """Record how many items each evaluated unit gained since; the newly seen ones."""
    with source_db.connect() as conn:
        raw = rows_by_unit(conn, job.source, kind, [c["unit_id"] for c in late], until)
    records, _bad = normalize_rows(raw, job.source.format)
    counts: dict[str, int] = {}
    for r in records:
        unit_id = getattr(r, UNIT_SLOTS[kind])
        if unit_id in known and r.ts > known[unit_id].last_ts:
            counts[unit_id] = counts.get(unit_id, 0) + 1
    with scores_db.begin() as conn:
        for unit_id, n in counts.items():
            conn.execute(sa.text(query("units", "record_late")), {
                "deployment": job.deployment, "unit_kind": kind, "unit_id": unit_id,
                "late_items": n})  # fmt: skip
    return sum(max(0, n - known[u].late_items) for u, n in counts.items())


SUMMARY_COUNTS = (
    ("rescored", "re-evaluated (late items)"),
    ("judged", "judged"),
    ("incomplete", "incomplete"),
    ("late_items", "late item(s) counted"),
)


def units_summary(details: dict[str, Any]) -> str | None:
    """One line on what a run did with sessions and traces, from its run details."""
    parts = []
    for kind in ("sessions", "traces"):
        done = details.get(kind)
        if not done:
            continue
        counts = [f"{done.get('evaluated', 0):,} evaluated"]
        for key, what in SUMMARY_COUNTS:
            if done.get(key):
                counts.append(f"{done[key]:,} {what}")
        for key, what in (("rejected", "quarantined"), ("skipped", "skipped")):
            if done.get(key):
                counts.append(f"{len(done[key]):,} {what}")
        note = f" ({done['note']})" if done.get("note") else ""
        parts.append(f"{kind}: {', '.join(counts)}{note}")
    return " · ".join(parts) or None
