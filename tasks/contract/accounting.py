"""What a batch's admission means for the run: every pulled row accounted for, a second log
under a reused id quarantined, and whether the share of invalid logs stops the run."""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tasks.config import EvalJob
from tasks.contract.suite import Admission
from tasks.errors import RowsUnaccounted
from tasks.store.persist import PageCounts
from tasks.store.sql import query
from tasks.warehouse.normalize import reject


def contract_breach(
    job: EvalJob, admission: Admission, pulled: int, so_far: PageCounts
) -> str | None:
    """Why this batch stops the run, or None. Small batches are judged with the run so far."""
    invalid, total = len(admission.rejects), pulled
    if pulled < job.quality.min_batch_rows:
        invalid, total = invalid + so_far.quarantined, total + so_far.pulled
        if total < job.quality.min_batch_rows:
            return None
    if invalid / total <= job.quality.max_invalid_fraction:
        return None
    top = ", ".join(f"{label} x{n}" for label, n in list(admission.summary.unexpected.items())[:5])
    sample = ", ".join(r.log_id for r in admission.rejects[:5])
    return (
        f"data contract broken for {job.deployment}: {invalid} of {total} logs "
        f"({invalid / total:.1%}) failed, above max_invalid_fraction "
        f"{job.quality.max_invalid_fraction:g}. Failed: {top or 'see quarantine'}. "
        f"Sample ids: {sample}. Nothing was evaluated and the watermark did not move; fix the "
        f"source, then rerun (see `assay quarantine {job.deployment}`)."
    )


def check_accounted(rows: Sequence[dict[str, Any]], admission: Admission) -> None:
    """Every pulled row is a record (to score) or a reject (to quarantine): pulled = normalized
    + quarantined, checked on each page rather than assumed. A row lost in between would be
    counted as pulled and never seen again, so the run fails loudly instead and the watermark
    stays where it was."""
    accounted = len(admission.records) + len(admission.rejects)
    if accounted == len(rows):
        return
    pulled = Counter(str(row.get("id")) for row in rows)
    kept = Counter([r.id for r in admission.records] + [str(r.log_id) for r in admission.rejects])
    missing = sorted((pulled - kept).elements())[:5]
    raise RowsUnaccounted(
        f"{len(rows):,} rows pulled but {len(admission.records):,} normalized + "
        f"{len(admission.rejects):,} quarantined = {accounted:,}"
        + (f"; not accounted for: {', '.join(missing)}" if missing else "")
    )


def without_duplicate_ids(scores_db: sa.Engine, deployment: str, admission: Admission) -> Admission:
    """A log id already scored at another time is a second log under a reused id: quarantined,
    naming the copy that was scored (never silently dropped by the score key's conflict)."""
    if not admission.records:
        return admission
    with scores_db.connect() as conn:
        found = conn.execute(
            sa.text(query("persist", "scored_times")),
            {"deployment": deployment, "log_ids": [r.id for r in admission.records]},
        )
        scored: dict[str, datetime] = {row.log_id: row.log_ts for row in found}
    repeats = [r for r in admission.records if r.id in scored and scored[r.id] != r.ts]
    if not repeats:
        return admission
    rejects = [
        reject(
            {"id": r.id, "ts": r.ts, "model": r.model, "customer_id": r.customer_id},
            [
                f"duplicate id: the log {r.id!r} at {scored[r.id].isoformat()} was already "
                f"scored; this one at {r.ts.isoformat()} reuses its id"
            ],
        )
        for r in repeats
    ]
    kept = [r for r in admission.records if r not in repeats]
    return admission.model_copy(update={"records": kept, "rejects": [*admission.rejects, *rejects]})
