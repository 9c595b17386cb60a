"""Reading quarantine, and the pure parts of replaying it after the source is fixed."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from tasks.store.sql import query


class QuarantinedLog(BaseModel):
    deployment: str
    log_id: str
    log_ts: datetime | None
    run_id: str
    stage: str
    expectations: list[str]
    reasons: list[str]
    created_at: datetime


class ReplayResult(BaseModel):
    """What a replay did with the quarantined logs it was asked to look at."""

    requested: int = 0
    readmitted: int = 0
    still_invalid: int = 0
    missing_from_source: int = 0
    scores_written: int = 0
    #: Times of the logs read, so the rollups of those hours are redone (not reported).
    seen: list[datetime] = Field(default_factory=list, exclude=True)


def list_quarantine(
    engine: sa.Engine,
    deployment: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
) -> list[QuarantinedLog]:
    params: dict[str, Any] = {"deployment": deployment, "run_id": run_id, "limit": limit}
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query("quarantine", "list_quarantine")), params)
        return [QuarantinedLog.model_validate(row._asdict()) for row in rows]


class QuarantineCounts(BaseModel):
    """Every quarantined log the filters select: how many, and how many per reason."""

    total: int = 0
    per_reason: dict[str, int] = Field(default_factory=dict)


def quarantine_counts(
    engine: sa.Engine, deployment: str | None = None, run_id: str | None = None
) -> QuarantineCounts:
    params: dict[str, Any] = {"deployment": deployment, "run_id": run_id}
    with engine.connect() as conn:
        total = conn.execute(sa.text(query("quarantine", "quarantine_total")), params)
        rows = conn.execute(sa.text(query("quarantine", "quarantine_counts")), params).all()
        return QuarantineCounts(
            total=total.scalar_one(), per_reason={row.reason: row.n for row in rows}
        )


def quarantined_ids(engine: sa.Engine, deployment: str, run_id: str | None = None) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(query("quarantine", "quarantined_ids")),
            {"deployment": deployment, "run_id": run_id},
        )
        return [row.log_id for row in rows]
