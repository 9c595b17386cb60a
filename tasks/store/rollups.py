"""Hourly rollups: what reports, the dashboard and run artifacts read instead of raw scores.

Score rollups are recomputed from `assay.scores` for whole hours after a run wrote them (so a
rerun or a concurrent backfill can never count a score twice). Usage rollups cover every log
the hourly run admits and are added in the page's transaction, next to the watermark.
"""

import hashlib
import math
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from evaluators.heuristics.refusal import refusal_phrase
from evaluators.records import SEGMENT_FIELDS, LogRecord
from tasks.store.sql import query

#: Latency histogram: bin 0 is < 1 ms, then 16 bins per decade up to 10^6 ms.
LATENCY_BINS_PER_DECADE = 16
LATENCY_BINS = 1 + 6 * LATENCY_BINS_PER_DECADE
#: Slices every rollup is kept for: the whole deployment plus each segment column.
DIMENSIONS: tuple[str, ...] = ("all", *SEGMENT_FIELDS)
NONE_VALUE = "(none)"


HOUR = timedelta(hours=1)


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def hour_ceil(ts: datetime) -> datetime:
    floor = hour_floor(ts)
    return floor if floor == ts else floor + HOUR


def refresh_score_rollups(
    conn: sa.Connection, deployment: str, start: datetime, end: datetime
) -> None:
    """Recompute the score rollups of every hour that overlaps [start, end]."""
    # Through the end of `end`'s hour: `end` itself may hold a log.
    bounds = {"deployment": deployment, "lo": hour_floor(start), "hi": hour_floor(end) + HOUR}
    conn.execute(sa.text(query("analytics", "lock_rollups")), {"deployment": deployment})
    conn.execute(sa.text(query("analytics", "delete_score_rollups")), bounds)
    conn.execute(sa.text(query("analytics", "insert_score_rollups")), bounds)


def latency_bin(latency_ms: float) -> int:
    if latency_ms < 1:
        return 0
    return min(LATENCY_BINS - 1, 1 + int(math.log10(latency_ms) * LATENCY_BINS_PER_DECADE))


class UsageCell(BaseModel):
    requests: int = 0
    errors: int = 0
    refusals: int = 0
    repeats: int = 0
    feedback_n: int = 0
    feedback_positive: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    token_requests: int = 0
    cost_usd: float = 0.0
    cost_requests: int = 0
    latency_hist: list[float] = Field(default_factory=lambda: [0.0] * LATENCY_BINS)

    def add(self, record: LogRecord, repeat: bool) -> None:
        self.requests += 1
        self.errors += record.status == "error"
        self.refusals += bool(record.response and refusal_phrase(record.response))
        self.repeats += repeat
        if record.feedback is not None:
            self.feedback_n += 1
            self.feedback_positive += record.feedback == "positive"
        if record.input_tokens is not None or record.output_tokens is not None:
            self.token_requests += 1
            self.input_tokens += record.input_tokens or 0
            self.output_tokens += record.output_tokens or 0
        if record.cost_usd is not None:
            self.cost_requests += 1
            self.cost_usd += record.cost_usd
        if record.latency_ms is not None:
            self.latency_hist[latency_bin(record.latency_ms)] += 1


def asker(record: LogRecord) -> str | None:
    return record.user_id or record.session_id


def prompt_key(record: LogRecord) -> str:
    normalized = " ".join(record.prompt.casefold().split())
    return hashlib.blake2b(normalized.encode(), digest_size=12).hexdigest()


def usage_cells(records: list[LogRecord]) -> dict[tuple[datetime, str, str], UsageCell]:
    """Usage per (hour, dim, value). A repeat is a prompt the same user (or session) already
    sent earlier in the same page of logs, which is usually the same hour."""
    cells: dict[tuple[datetime, str, str], UsageCell] = {}
    seen: set[tuple[str, str]] = set()
    for record in sorted(records, key=lambda r: (r.ts, r.id)):
        who = asker(record)
        key = (who, prompt_key(record)) if who else None
        repeat = key in seen if key else False
        if key:
            seen.add(key)
        hour = hour_floor(record.ts)
        for dim in DIMENSIONS:
            value = "all" if dim == "all" else getattr(record, dim) or NONE_VALUE
            cells.setdefault((hour, dim, value), UsageCell()).add(record, repeat)
    return cells


def add_usage(conn: sa.Connection, deployment: str, records: list[LogRecord]) -> None:
    params: list[dict[str, Any]] = [
        {"deployment": deployment, "hour": hour, "dim": dim, "value": value, **cell.model_dump()}
        for (hour, dim, value), cell in sorted(usage_cells(records).items())
    ]
    if params:
        conn.execute(sa.text(query("analytics", "add_usage")), params)
