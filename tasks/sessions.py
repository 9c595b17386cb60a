"""Sessions as units of evaluation: a conversation is evaluated once, when it is complete (no
turn for `sessions.idle`), by the first run whose window sees it complete, however many windows
its turns span. Its scores are keyed by unit kind and id; `unit_evaluations` records that it was
evaluated (in the same transaction), so a rerun or a crash-and-rerun evaluates nothing twice.
Turns that arrive after their session was evaluated are counted as late, not scored."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.base import Score
from evaluators.heuristics.units import UNIT_EVALUATORS, UnitEvaluator
from evaluators.units import Session
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
    rejected: dict[str, str] = {}  # session id -> why it cannot be evaluated
    late_turns: int = 0
    scored: int = 0
    first_ended: datetime | None = None  # for the rollup hours the run refreshes


def session_evaluators(job: EvalJob) -> list[UnitEvaluator]:
    return [
        UNIT_EVALUATORS[cfg.name].model_validate(cfg.params)
        for cfg in job.evaluators
        if cfg.name in UNIT_EVALUATORS and UNIT_EVALUATORS[cfg.name].unit == "session"
    ]


def session_row(
    deployment: str, session: Session, evaluator: UnitEvaluator, score: Score, run_id: str
) -> ScoreRow:
    first = session.turns[0]
    return ScoreRow(
        deployment=deployment, unit_kind="session", log_id=session.session_id,
        evaluator=evaluator.name, evaluator_version=evaluator.version, log_ts=session.ended_at,
        status=score.status, score=score.score, passed=score.passed, label=score.label,
        reason=score.reason[:MAX_REASON_CHARS] if score.reason else None, cost_usd=0.0,
        run_id=run_id, **first.segment(),
    )  # fmt: skip


def evaluate_session(
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
) -> int:
    """Scores and the record that their units were evaluated, in one transaction."""
    with engine.begin() as conn:
        scored = copy_scores(conn, rows)
        if units:
            conn.execute(sa.text(query("units", "record_unit")),
                         [{**u, "deployment": deployment, "unit_kind": "session",
                           "run_id": run_id} for u in units])  # fmt: skip
    return scored


def evaluate_completed_sessions(
    job: EvalJob, scores_db: sa.Engine, source_db: sa.Engine, run_id: str, until: datetime
) -> SessionOutcome:
    """Evaluate every session complete by `until` (its last turn at most `until - idle`) that
    has not been evaluated, and count late turns of those that were."""
    evaluators = session_evaluators(job)
    outcome = SessionOutcome()
    if not evaluators:
        return outcome
    idle, since = job.sessions.idle, until - job.sessions.lookback
    with source_db.connect() as conn:
        complete = completed_sessions(conn, job.source, since, until, idle)
    known = _evaluated(scores_db, job.deployment, [c["session_id"] for c in complete])
    late = [c for c in complete if c["session_id"] in known
            and c["last_ts"] > known[c["session_id"]].last_ts]  # fmt: skip
    todo = [c["session_id"] for c in complete if c["session_id"] not in known]
    for start in range(0, len(todo), CHUNK):
        ids = todo[start : start + CHUNK]
        with source_db.connect() as conn:
            raw = rows_by_session(conn, job.source, ids, until)
        records, _bad_rows = normalize_rows(raw, job.source.format)  # the log pass quarantines them
        sessions, rejects = assemble_sessions(records)
        rows = [
            r for s in sessions for r in evaluate_session(job.deployment, s, evaluators, run_id)
        ]
        units = [{"unit_id": s.session_id, "last_ts": s.ended_at, "items": len(s.turns),
                  "status": "evaluated", "reason": None} for s in sessions]  # fmt: skip
        by_id = {c["session_id"]: c for c in complete}
        units += [{"unit_id": r.unit_id, "last_ts": by_id[r.unit_id]["last_ts"], "items": 0,
                   "status": "rejected", "reason": "; ".join(r.reasons)[:MAX_REASON_CHARS]}
                  for r in rejects]  # fmt: skip
        outcome.scored += _write(scores_db, job.deployment, run_id, rows, units)
        outcome.evaluated += len(sessions)
        outcome.rejected.update({r.unit_id: "; ".join(r.reasons) for r in rejects})
        ends = [s.ended_at for s in sessions]
        if ends:
            first = min(ends)
            outcome.first_ended = min(first, outcome.first_ended or first)
    if late:
        outcome.late_turns = _count_late(job, scores_db, source_db, late, known, until)
    return outcome


def _count_late(
    job: EvalJob,
    scores_db: sa.Engine,
    source_db: sa.Engine,
    late: list[dict[str, Any]],
    known: dict[str, Any],
    until: datetime,
) -> int:
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
    new = sum(max(0, n - known[s].late_items) for s, n in counts.items())
    return new
