"""The text of some logs (prompt, context, response) read back from a deployment's source, for
people to look at: the dashboard's drill-down and annotation queues. Read READ ONLY, masked like
every outward text, bounded."""

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from evaluators.unit_records import UnitKind
from tasks.alerts.rules import Verdict, segment_sql
from tasks.alerts.slack_messages import (
    Example,
)
from tasks.config import AGREEMENT_METRICS, EvalJob
from tasks.redact import redact
from tasks.store.sql import query

log = logging.getLogger("assay.notify")
TEXT_CHARS = 4000
#: Where job files live (the dashboard and queues find a deployment's source through its job).
JOBS_DIR = Path("deployments/jobs")


def shown(text: str | None, keep_pii: bool = False) -> str:
    """Outward text: secrets redacted, PII masked (unless asked to keep it), bounded."""
    from evaluators.heuristics.pii import mask_pii

    clean = redact(text or "")
    return (clean if keep_pii else mask_pii(clean))[:TEXT_CHARS]


def log_texts(
    job: EvalJob, log_ids: list[str], keep_pii: bool = False
) -> dict[str, dict[str, Any]]:
    """Prompt, context and response of these logs by id (missing ones are simply absent)."""
    from tasks.warehouse.connect import fitted_job, source_engine
    from tasks.warehouse.normalize import normalize_rows
    from tasks.warehouse.source import rows_by_id

    fitted = fitted_job(job)
    with source_engine(fitted.source).connect() as conn:
        rows = rows_by_id(conn, fitted.source, log_ids)
    records = normalize_rows(rows, fitted.source.format)[0]
    return {
        r.id: {"ts": r.ts.isoformat(), "prompt": shown(r.prompt, keep_pii),
               "response": shown(r.response, keep_pii),
               "context": [shown(c, keep_pii) for c in r.context[:8]], "model": r.model}
        for r in records
    }  # fmt: skip


def job_texts(deployment: str, log_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`log_texts` through the deployment's job file; empty when there is none here or its
    source cannot be read (a courtesy: callers show what they have)."""
    from tasks.config import load_job

    path = JOBS_DIR / f"{deployment}.yaml"
    if not path.exists():
        return {}
    try:
        return log_texts(load_job(path), log_ids)
    except Exception:
        return {}


def unit_transcripts(
    job: EvalJob, kind: UnitKind, unit_ids: list[str], chars: int
) -> dict[str, tuple[str, str]]:
    """Unit id -> (transcript as a judge reads it, cut in the middle beyond `chars`; the final
    answer) of these sessions or traces, read from the job's source as they are now."""
    from evaluators.unit_records import Session, transcript_text
    from tasks.sessions import read_units
    from tasks.warehouse.connect import source_engine

    units, _rejects, _skipped = read_units(
        job, kind, source_engine(job.source), unit_ids, datetime.now(UTC)
    )
    texts = {}
    for unit in units:
        found = unit.unit
        final = found.turns[-1].response if isinstance(found, Session) else found.output
        texts[unit.unit_id] = (transcript_text(found, chars), final or "")
    return texts


def job_unit_texts(deployment: str, kind: str, unit_ids: list[str]) -> dict[str, str]:
    """`unit_transcripts` through the deployment's job file, masked like every outward text;
    empty when there is none here or its source cannot be read."""
    from tasks.config import load_job
    from tasks.warehouse.connect import fitted_job

    path = JOBS_DIR / f"{deployment}.yaml"
    unit_kind: UnitKind = "trace" if kind == "trace" else "session"
    if not path.exists() or kind != unit_kind:
        return {}
    try:
        found = unit_transcripts(fitted_job(load_job(path)), unit_kind, unit_ids, TEXT_CHARS)
    except Exception:
        return {}
    return {unit_id: shown(transcript) for unit_id, (transcript, _final) in found.items()}


def unit_texts(job: EvalJob, failing: list[Any]) -> dict[str, tuple[str, str]]:
    """A failing session's or trace's transcript (its opening and ending, cut in the middle)
    and its final answer, as a failing log's prompt and response."""
    from tasks.alerts.examples import unit_transcripts

    texts: dict[str, tuple[str, str]] = {}
    for kind in ("session", "trace"):
        ids = [row.log_id for row in failing if row.unit_kind == kind]
        if ids:
            texts.update(unit_transcripts(job, kind, ids, 1200))
    return texts


def failing_examples(job: EvalJob) -> Any:
    """A function giving up to 3 failing logs of an evaluator in a run, with their text."""

    def examples(conn: sa.Connection, run_id: str, verdict: Verdict) -> list[Example]:
        from tasks.warehouse.connect import source_engine
        from tasks.warehouse.normalize import normalize_rows
        from tasks.warehouse.source import rows_by_id

        if verdict.rule.metric in AGREEMENT_METRICS:
            return []  # judge drift is about labels, not about this run's failing logs
        evaluator = verdict.measurement.evaluator
        segment = verdict.measurement.segment.partition("=")[2]
        failing = conn.execute(
            sa.text(
                query("alerts", "failing_examples").replace("{segment}", segment_sql(verdict.rule))
            ),
            {"run_id": run_id, "evaluator": evaluator, "segment": segment},
        ).all()
        if not failing:
            return []
        texts: dict[str, tuple[str, str]] = {}
        try:
            logs = [row.log_id for row in failing if row.unit_kind == "log"]
            with source_engine(job.source).connect() as source:
                rows = rows_by_id(source, job.source, logs) if logs else []
            for record in normalize_rows(rows, job.source.format)[0]:
                texts[record.id] = (record.prompt, record.response or "")
            texts.update(unit_texts(job, [r for r in failing if r.unit_kind != "log"]))
        except Exception as exc:  # examples are a courtesy; the alert goes out without them
            log.warning("could not read failing examples: %s", type(exc).__name__)
        return [
            Example(
                evaluator=evaluator,
                log_id=row.log_id if row.unit_kind == "log" else f"{row.unit_kind} {row.log_id}",
                score=row.score,
                prompt=texts.get(row.log_id, ("", ""))[0],
                response=texts.get(row.log_id, ("", ""))[1],
                reason=row.reason,
            )
            for row in failing
        ]

    return examples
