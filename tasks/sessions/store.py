"""What a run writes for its units, in one transaction per chunk: scores, the record that each
unit was evaluated (or refused, or skipped), quarantine entries, the spend of the judge calls;
and the late items of units evaluated before."""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.unit_records import UnitKind
from tasks.budget.ledger import LedgerGate
from tasks.config import EvalJob
from tasks.sessions.assemble import UnitReject
from tasks.sessions.pending import Unit
from tasks.sessions.scoring import Present
from tasks.store.persist import copy_scores
from tasks.store.rows import MAX_REASON_CHARS, ScoreRow
from tasks.store.sql import query
from tasks.warehouse.normalize import normalize_rows
from tasks.warehouse.source import UNIT_SLOTS, rows_by_unit


def settle_spend(gate: LedgerGate, settled: list[Any]) -> Callable[[sa.Connection], None]:
    """The spend of these calls, applied in the transaction that stores their verdicts."""
    return lambda conn: gate.ledger.apply(conn, settled)


def present_scores(engine: sa.Engine, deployment: str, kind: UnitKind, ids: list[str]) -> Present:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(query("units", "unit_scores_present")),
            {"deployment": deployment, "unit_kind": kind, "unit_ids": ids},
        )
        return {(r.log_id, r.evaluator, r.evaluator_version) for r in found}


def quarantine_entries(
    kind: UnitKind, rejects: list[UnitReject], last: dict[str, Any]
) -> list[dict[str, Any]]:
    return [{
        "log_id": f"{kind}:{r.unit_id}", "log_ts": last.get(r.unit_id), "stage": "unit",
        "reasons": json.dumps(r.reasons), "expectations": [],
        "raw": json.dumps({"unit_kind": kind, "unit_id": r.unit_id}),
    } for r in rejects]  # fmt: skip


def unit_record(
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


def write_units(
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


def count_late(
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
