"""The rows Assay's database keeps, as the stages hand them to the store: a score, a quarantined
log, and the keyset position a watermark records."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class Cursor(BaseModel):
    """Position after the last row processed; the watermark stores exactly this."""

    ts: datetime
    log_id: Any


class Reject(BaseModel):
    """A row that will not be evaluated, with why: quarantined, never dropped. Built by
    `reject()`, which makes the reasons and the raw copy bounded, storable and redacted."""

    log_id: str
    log_ts: datetime | None
    reasons: list[str]
    raw: dict[str, Any]
    stage: Literal["normalize", "validate"] = "normalize"
    expectations: list[str] = []


class ScoreRow(BaseModel):
    """One row of `assay.scores`, as written."""

    deployment: str
    log_id: str  # the unit's id for session and trace scores
    evaluator: str
    evaluator_version: str
    log_ts: datetime
    judge_model: str | None = None
    status: str
    score: float | None
    passed: bool | None
    label: str | None
    reason: str | None
    cost_usd: float | None = 0.0  # None: a judge whose price is unknown
    tokens: int | None = None
    latency_ms: int | None = None
    weight: float = 1.0
    run_id: str
    model: str | None
    provider: str | None
    prompt_slug: str | None
    topic: str | None
    customer_id: str | None
    environment: str | None
    content_hash: str | None = None
    unit_kind: str = "log"  # log, session or trace
    unit_revision: int = 1  # a unit evaluated again (late turns) is its next revision


SCORE_COLUMNS: tuple[str, ...] = tuple(ScoreRow.model_fields)
MAX_REASON_CHARS = 1000
