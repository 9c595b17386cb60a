"""The text of some logs (prompt, context, response) read back from a deployment's source, for
people to look at: the dashboard's drill-down and annotation queues. Read READ ONLY, masked like
every outward text, bounded."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluators.units import UnitKind
from tasks.config import EvalJob

TEXT_CHARS = 4000
#: Where job files live (the dashboard and queues find a deployment's source through its job).
JOBS_DIR = Path("deployments/jobs")


def shown(text: str | None, keep_pii: bool = False) -> str:
    """Outward text: secrets redacted, PII masked (unless asked to keep it), bounded."""
    from evaluators.heuristics.pii import mask_pii
    from tasks.redact import redact

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
    from evaluators.units import Session, transcript_text
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
