"""Write one page's outcome atomically: scores, quarantine, run counters and the watermark.

Scores go in with COPY; any key already stored is skipped (`ON CONFLICT DO NOTHING` from a
staging table), so a rerun over the same logs adds nothing, and because the watermark
moves in the same transaction, a crash leaves either the whole page or none of it.
"""

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa
from pydantic import BaseModel

from evaluators.records import LogRecord
from tasks.errors import TransientError
from tasks.redact import redact
from tasks.store.db import on_fresh_connections
from tasks.store.rollups import add_usage
from tasks.store.rows import MAX_REASON_CHARS, SCORE_COLUMNS, Cursor, Reject, ScoreRow
from tasks.store.sanitize import storable_text
from tasks.store.sql import query


class PageCounts(BaseModel):
    pulled: int = 0
    normalized: int = 0
    quarantined: int = 0
    scored: int = 0
    errors: int = 0
    skipped: int = 0

    def __add__(self, other: "PageCounts") -> "PageCounts":
        return PageCounts(
            **{k: getattr(self, k) + getattr(other, k) for k in PageCounts.model_fields}
        )


#: Free text a judge, a provider's error body or a log can put into a score: made storable (no
#: NUL, valid UTF-8, bounded) and redacted at this boundary.
_FREE_TEXT = tuple(SCORE_COLUMNS.index(name) for name in ("reason", "label"))


def _copy(driver: psycopg.Connection[Any], table: str, rows: list[ScoreRow]) -> None:
    columns = ", ".join(SCORE_COLUMNS)
    with driver.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            values = [getattr(row, name) for name in SCORE_COLUMNS]
            for i in _FREE_TEXT:
                if values[i]:
                    values[i] = redact(storable_text(values[i], MAX_REASON_CHARS))
            copy.write_row(values)


def copy_scores(conn: sa.Connection, rows: list[ScoreRow]) -> int:
    """Bulk-insert rows, skipping any already stored. Returns how many were new.

    Fresh logs never conflict, so COPY goes straight into `assay.scores` inside a savepoint;
    if any key already exists (a rerun, or a concurrent backfill), the savepoint is rolled
    back and the page goes through a staging table and `ON CONFLICT DO NOTHING` instead.

    The savepoint is SQLAlchemy's, inside the caller's transaction. (psycopg's own
    `transaction()` on a connection that has not run a statement yet is a BEGIN/COMMIT of its
    own: the scores would commit even if the rest of the page then failed.)
    """
    if not rows:
        return 0
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with conn.begin_nested():
            _copy(driver, "assay.scores", rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    conn.execute(sa.text(query("persist", "create_staging")))
    _copy(driver, "assay_scores_staging", rows)
    return conn.execute(sa.text(query("persist", "merge_staging"))).rowcount


def quarantine_rows(
    conn: sa.Connection, deployment: str, run_id: str, rejects: list[Reject]
) -> int:
    if not rejects:
        return 0
    params = [
        {
            "deployment": deployment,
            "log_id": r.log_id,
            "log_ts": r.log_ts,
            "run_id": run_id,
            "stage": r.stage,
            # `reject()` made both bounded, storable and redacted.
            "reasons": json.dumps(r.reasons),
            "expectations": r.expectations,
            "raw": json.dumps(r.raw),
        }
        for r in rejects
    ]
    return conn.execute(sa.text(query("persist", "insert_quarantine")), params).rowcount


def move_watermark(
    conn: sa.Connection,
    deployment: str,
    run_id: str,
    cursor: Cursor,
    counted_from: datetime | None,
) -> None:
    conn.execute(
        sa.text(query("persist", "upsert_watermark")),
        {"deployment": deployment, "ts": cursor.ts, "log_id": str(cursor.log_id), "run_id": run_id,
         "counted_from": counted_from},
    )  # fmt: skip


class Usage(NamedTuple):
    """A page's LLM calls for the usage rollups, and how this run counts them so that every log
    read is counted once: a run that moves the watermark counts what it moves over (`start`:
    where it began reading, which the first such run records); a run over a fixed window
    (`once`) counts only logs outside that range that no other run counted."""

    records: list[LogRecord]
    start: datetime
    once: bool = False


def count_usage(conn: sa.Connection, deployment: str, usage: Usage, moved: bool) -> None:
    ids = [r.id for r in usage.records]
    if not ids or not (moved or usage.once):
        return
    if moved:
        rows = conn.execute(sa.text(query("persist", "uncounted_by_watermark")),
                            {"deployment": deployment, "log_ids": ids})  # fmt: skip
    else:
        # After any hourly run's page that holds the watermark (its counting commits first).
        conn.execute(sa.text(query("persist", "lock_watermark")), {"deployment": deployment})
        rows = conn.execute(sa.text(query("persist", "count_once")),
                            {"deployment": deployment, "log_ids": ids,
                             "log_ts": [r.ts for r in usage.records]})  # fmt: skip
    uncounted = set(rows.scalars())
    add_usage(conn, deployment, [r for r in usage.records if r.id in uncounted])


#: Tries of a page's transaction when its connection drops (the pool hands out a live one).
WRITE_ATTEMPTS = 4


def write_page(
    engine: sa.Engine,
    deployment: str,
    run_id: str,
    rows: list[ScoreRow],
    rejects: list[Reject],
    cursor: Cursor | None,
    pulled: int,
    move: bool = True,
    admitted: list[str] | None = None,
    usage: Usage | None = None,
    also: Callable[[sa.Connection], None] | None = None,
) -> PageCounts:
    """`write_page_once`, again on a fresh connection when the connection was dropped or
    terminated: the transaction either committed or left nothing, and the judge results it
    carries are not paid for again. A page that still cannot be written is a TransientError
    (the page is retried), never a score.

    One case is not exact: a commit that succeeded but whose acknowledgement was lost with the
    connection. The retry then finds its scores already stored (none is duplicated) but adds the
    page's run counters and usage rollups a second time."""
    return on_fresh_connections(
        lambda: write_page_once(
            engine,
            deployment,
            run_id,
            rows,
            rejects,
            cursor,
            pulled,
            move=move,
            admitted=admitted,
            usage=usage,
            also=also,
        ),
        WRITE_ATTEMPTS,
        lambda problem: TransientError(
            f"writing the page failed {WRITE_ATTEMPTS} times: {problem}"
        ),
    )


def write_page_once(
    engine: sa.Engine,
    deployment: str,
    run_id: str,
    rows: list[ScoreRow],
    rejects: list[Reject],
    cursor: Cursor | None,
    pulled: int,
    move: bool = True,
    admitted: list[str] | None = None,
    usage: Usage | None = None,
    also: Callable[[sa.Connection], None] | None = None,
) -> PageCounts:
    """One transaction: scores, quarantine, re-admission of logs that now pass, counters,
    (if `move` and a cursor is given) the watermark, the usage rollups of `usage`, the
    logs that moving the watermark consumes (so each log counts once), and `also` (the spend
    of the judge calls behind these scores)."""
    statuses = Counter(row.status for row in rows)
    with engine.begin() as conn:
        if also is not None:
            also(conn)
        inserted = copy_scores(conn, rows)
        quarantine_rows(conn, deployment, run_id, rejects)
        if admitted:
            conn.execute(
                sa.text(query("persist", "readmit_quarantined")),
                {"deployment": deployment, "log_ids": admitted},
            )
        counts = PageCounts(
            pulled=pulled,
            normalized=pulled - len(rejects),
            quarantined=len(rejects),
            scored=inserted,
            errors=statuses["error"],
            skipped=statuses["skipped"],
        )
        conn.execute(
            sa.text(query("persist", "add_run_counts")), {"run_id": run_id, **counts.model_dump()}
        )
        moved = move and cursor is not None
        if moved:
            assert cursor is not None
            move_watermark(conn, deployment, run_id, cursor, usage.start if usage else None)
        if usage is not None:
            count_usage(conn, deployment, usage, moved)
            feedback_labels(conn, deployment, usage.records)
    return counts


def feedback_labels(conn: sa.Connection, deployment: str, records: list[LogRecord]) -> None:
    """The end users' thumbs of these logs, as `user_feedback` labels (once per user and log)."""
    given = [r for r in records if r.feedback is not None]
    if not given:
        return
    conn.execute(
        sa.text(query("labels", "feedback_labels")),
        {"deployment": deployment, "log_ids": [r.id for r in given],
         "feedback": [r.feedback for r in given],
         "annotators": [f"user:{r.user_id}" if r.user_id else "end-user" for r in given]},
    )  # fmt: skip
