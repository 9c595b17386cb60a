"""Sessions as units of evaluation: a conversation is evaluated once, when it is complete (no
turn for `sessions.idle`), by the first run whose window sees it complete, however many windows
its turns span. Free session evaluators score every complete session; session judges a
deterministic sample of them (the job's sampling rate and seed, by session id), through the
run's judge runtime and spend ledger. Scores are keyed by unit kind and id, and
`unit_evaluations` records that a session was evaluated in the same transaction (with the spend
of its judge calls), so a rerun or a crash-and-rerun evaluates nothing twice. Turns that arrive
after their session was evaluated are counted as late, not scored."""

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.base import Score
from evaluators.heuristics.units import UnitEvaluator
from evaluators.judges.builtin import UNSCORED_BUDGET
from evaluators.judges.client import JudgeRuntime
from evaluators.judges.sessions import SessionJudge
from evaluators.units import Session
from tasks.budget.ledger import LedgerGate
from tasks.budget.sampling import inclusion_weight, sampled
from tasks.config import EvalJob
from tasks.score import MAX_REASON_CHARS, ScoreRow
from tasks.store.persist import copy_scores
from tasks.store.sql import query
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import completed_sessions, rows_by_session
from tasks.warehouse.units import assemble_sessions

#: Sessions read and written per transaction.
CHUNK = 500


class SessionOutcome(BaseModel):
    evaluated: int = 0
    judged: int = 0  # session-judge verdicts (sampled)
    unscored_budget: dict[str, int] = {}  # judge -> sampled sessions the budget left unjudged
    rejected: dict[str, str] = {}  # session id -> why it cannot be evaluated
    late_turns: int = 0
    scored: int = 0
    first_ended: datetime | None = None  # for the rollup hours the run refreshes
    note: str | None = None  # why nothing could be looked at


def session_evaluators(job: EvalJob) -> list[UnitEvaluator]:
    built = (cfg.build() for cfg in job.evaluators)
    return [e for e in built if isinstance(e, UnitEvaluator) and e.unit == "session"]


def session_judges(job: EvalJob) -> list[SessionJudge]:
    return [e for e in session_evaluators(job) if isinstance(e, SessionJudge)]


def session_row(
    deployment: str,
    session: Session,
    evaluator: UnitEvaluator,
    score: Score,
    run_id: str,
    weight: float = 1.0,
) -> ScoreRow:
    first = session.turns[0]
    return ScoreRow(
        deployment=deployment, unit_kind="session", log_id=session.session_id,
        evaluator=evaluator.name, evaluator_version=evaluator.evaluator_version,
        log_ts=session.ended_at, judge_model=score.judge_model, status=score.status,
        score=score.score, passed=score.passed, label=score.label,
        reason=score.reason[:MAX_REASON_CHARS] if score.reason else None,
        cost_usd=score.cost_usd, tokens=score.tokens, latency_ms=score.latency_ms,
        weight=weight, run_id=run_id, **first.segment(),
    )  # fmt: skip


def free_rows(
    deployment: str, session: Session, evaluators: list[UnitEvaluator], run_id: str
) -> list[ScoreRow]:
    rows = []
    for evaluator in evaluators:
        try:
            score = evaluator.evaluate(session)
        except Exception as exc:  # an evaluator bug costs one row, not the run
            score = Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        rows.append(session_row(deployment, session, evaluator, score, run_id))
    return rows


async def judged_rows(
    job: EvalJob,
    sessions: list[Session],
    judges: list[SessionJudge],
    runtime: JudgeRuntime | None,
    run_id: str,
) -> list[ScoreRow]:
    """The session judges' verdicts on their sample of these sessions (a refused budget is a
    skipped row, counted like a log's; a failed call an error row: nothing is guessed)."""
    rate, seed = job.sampling.rate, job.sampling.seed
    work = [(s, j) for j in judges for s in sessions
            if sampled(seed, j.name, s.session_id, rate)]  # fmt: skip
    if not work:
        return []
    if runtime is None:
        return [session_row(job.deployment, s, j, Score.error("no judge runtime"), run_id)
                for s, j in work]  # fmt: skip

    async def one(session: Session, judge: SessionJudge) -> ScoreRow:
        try:
            score = await judge.judge(session, runtime)
        except Exception as exc:  # the judge path raised: this unit's error, not the run's
            score = Score.error(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        return session_row(job.deployment, session, judge, score, run_id, inclusion_weight(rate))

    return list(await asyncio.gather(*(one(s, j) for s, j in work)))


def _settle(gate: LedgerGate, settled: list[Any]) -> Callable[[sa.Connection], None]:
    """The spend of these calls, applied in the transaction that stores their verdicts."""
    return lambda conn: gate.ledger.apply(conn, settled)


def _evaluated(engine: sa.Engine, deployment: str, ids: list[str]) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            row.unit_id: row
            for row in conn.execute(
                sa.text(query("units", "evaluated_units")),
                {"deployment": deployment, "unit_kind": "session", "unit_ids": ids},
            )
        }


def _write(
    engine: sa.Engine,
    deployment: str,
    run_id: str,
    rows: list[ScoreRow],
    units: list[dict[str, Any]],
    also: Callable[[sa.Connection], None] | None,
) -> int:
    """Scores, the record that their units were evaluated, and the spend of the judge calls
    behind them, in one transaction."""
    with engine.begin() as conn:
        if also is not None:
            also(conn)
        scored = copy_scores(conn, rows)
        if units:
            conn.execute(sa.text(query("units", "record_unit")),
                         [{**u, "deployment": deployment, "unit_kind": "session",
                           "run_id": run_id} for u in units])  # fmt: skip
    return scored


async def evaluate_completed_sessions(
    job: EvalJob,
    scores_db: sa.Engine,
    source_db: sa.Engine,
    run_id: str,
    until: datetime,
    runtime: JudgeRuntime | None = None,
) -> SessionOutcome:
    """Evaluate every session complete by `until` (its last turn at most `until - idle`) that
    has not been evaluated, and count late turns of those that were."""
    evaluators = session_evaluators(job)
    outcome = SessionOutcome()
    if not evaluators:
        return outcome
    if "session_id" not in job.source.column_mapping():
        outcome.note = (
            "the source has no session_id column (map one under source.columns): the session "
            "evaluators have nothing to score"
        )
        return outcome
    judges = [e for e in evaluators if isinstance(e, SessionJudge)]
    free = [e for e in evaluators if not isinstance(e, SessionJudge)]
    gate = runtime.gate if runtime is not None and isinstance(runtime.gate, LedgerGate) else None

    def find() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        with source_db.connect() as conn:
            found = completed_sessions(conn, job.source, until - job.sessions.lookback, until,
                                       job.sessions.idle)  # fmt: skip
        return found, _evaluated(scores_db, job.deployment, [c["session_id"] for c in found])

    complete, known = await asyncio.to_thread(find)
    by_id = {c["session_id"]: c for c in complete}
    todo = [sid for sid in by_id if sid not in known]
    for start in range(0, len(todo), CHUNK):
        ids = todo[start : start + CHUNK]

        def read(ids: list[str] = ids) -> list[dict[str, Any]]:
            with source_db.connect() as conn:
                return rows_by_session(conn, job.source, ids, until)

        # Bad rows are the log pass's business (quarantined there); a session is its good turns.
        records, _bad_rows = normalize_rows(await asyncio.to_thread(read), job.source.format)
        sessions, rejects = assemble_sessions(records)
        rows = [r for s in sessions for r in free_rows(job.deployment, s, free, run_id)]
        verdicts = []
        for row in await judged_rows(job, sessions, judges, runtime, run_id):
            if row.label == UNSCORED_BUDGET:  # counted, not written (as for logs)
                left = outcome.unscored_budget
                left[row.evaluator] = left.get(row.evaluator, 0) + 1
            else:
                verdicts.append(row)
        units = [{"unit_id": s.session_id, "last_ts": s.ended_at, "items": len(s.turns),
                  "status": "evaluated", "reason": None} for s in sessions]  # fmt: skip
        units += [{"unit_id": r.unit_id, "last_ts": by_id[r.unit_id]["last_ts"], "items": 0,
                   "status": "rejected", "reason": "; ".join(r.reasons)[:MAX_REASON_CHARS]}
                  for r in rejects]  # fmt: skip
        settled = gate.take() if gate is not None else []
        spend = _settle(gate, settled) if gate and settled else None
        outcome.scored += await asyncio.to_thread(
            _write, scores_db, job.deployment, run_id, rows + verdicts, units, spend
        )
        outcome.evaluated += len(sessions)
        outcome.judged += sum(r.status == "ok" for r in verdicts)
        outcome.rejected.update({r.unit_id: "; ".join(r.reasons) for r in rejects})
        if sessions:
            first = min(s.ended_at for s in sessions)
            outcome.first_ended = min(first, outcome.first_ended or first)
    late = [c for sid, c in by_id.items() if sid in known and c["last_ts"] > known[sid].last_ts]
    if late:
        outcome.late_turns = await asyncio.to_thread(
            _count_late, job, scores_db, source_db, late, known, until
        )
    return outcome


def _count_late(
    job: EvalJob,
    scores_db: sa.Engine,
    source_db: sa.Engine,
    late: list[dict[str, Any]],
    known: dict[str, Any],
    until: datetime,
) -> int:
    """Record how many turns each evaluated session gained since; the newly seen ones."""
    with source_db.connect() as conn:
        raw = rows_by_session(conn, job.source, [c["session_id"] for c in late], until)
    records, _bad = normalize_rows(raw, job.source.format)
    counts: dict[str, int] = {}
    for r in records:
        if r.session_id in known and r.ts > known[r.session_id].last_ts:
            counts[r.session_id] = counts.get(r.session_id, 0) + 1
    with scores_db.begin() as conn:
        for session_id, n in counts.items():
            conn.execute(sa.text(query("units", "record_late")), {
                "deployment": job.deployment, "unit_kind": "session", "unit_id": session_id,
                "late_items": n})  # fmt: skip
    return sum(max(0, n - known[s].late_items) for s, n in counts.items())
