"""One run's pass over the units of one kind: find, read, score, write, chunk by chunk."""

import asyncio
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.judges.builtin import UNSCORED_BUDGET
from evaluators.judges.client import JudgeRuntime
from evaluators.judges.sessions import UnitJudge
from evaluators.unit_records import Trace, UnitKind
from tasks.budget.ledger import LedgerGate
from tasks.config import EvalJob
from tasks.sessions.pending import CHUNK, Unit, evaluators_of, find_pending, read_units
from tasks.sessions.scoring import Present, free_rows, judged_rows
from tasks.sessions.store import (
    UnitWrite,
    count_late,
    present_scores,
    quarantine_entries,
    settle_spend,
    unit_record,
    write_units,
)
from tasks.warehouse.source import UNIT_SLOTS


def incomplete_note(unit: Unit) -> str | None:
    """Why a trace was evaluated as it is: a step's parent never arrived (it stood as a root)."""
    if isinstance(unit.unit, Trace) and unit.unit.incomplete:
        return "incomplete: a step's parent never arrived; it was evaluated as a root"
    return None


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
        sizes = {u: by_id[u]["items"] for u in ids}
        units, rejects, skipped = await asyncio.to_thread(
            read_units, job, kind, source_db, ids, until, sizes
        )
        present: Present = set()
        if backfill:
            present = await asyncio.to_thread(present_scores, scores_db, job.deployment, kind, ids)
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
        outcomes = [(u.unit_id, "evaluated", incomplete_note(u), u) for u in units]
        outcomes += [(r.unit_id, "rejected", "; ".join(r.reasons), None) for r in rejects]
        outcomes += [(u, "skipped", why, None) for u, why in skipped.items()]
        records_of = [unit_record(u, last[u], revisions.get(u, 1), status, why, unit)
                      for u, status, why, unit in outcomes]  # fmt: skip
        write = UnitWrite(
            kind=kind, rows=rows + verdicts, units=records_of,
            quarantine=quarantine_entries(kind, rejects, last),
            rescored=[u for u in ids if u in revisions],
        )  # fmt: skip
        settled = gate.take() if gate is not None else []
        spend = settle_spend(gate, settled) if gate and settled else None
        outcome.scored += await asyncio.to_thread(
            write_units, scores_db, job.deployment, run_id, write, spend
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
            count_late, job, kind, scores_db, source_db, [by_id[u] for u in late], known, until
        )
    return outcome


SUMMARY_COUNTS = (
    ("rescored", "re-evaluated (late items)"),
    ("judged", "judge verdicts"),  # one per sampled unit and unit judge
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
