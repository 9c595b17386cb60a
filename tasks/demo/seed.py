"""Load rows into warehouse tables with COPY (the demo and the benchmark use it)."""

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tasks.demo import data as demo_data
from tasks.store.sql import query

Progress = Callable[[int], None]


def copy_rows(
    conn: sa.Connection,
    table: str,
    columns: list[str],
    rows: Iterable[dict[str, Any]],
    progress: Progress | None = None,
    every: int = 500,
) -> int:
    """COPY dict rows into `table` (a trusted, code-defined name). Returns the row count."""
    driver = conn.connection.driver_connection
    assert driver is not None
    count = 0
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(tuple(row.get(c) for c in columns))  # absent: NULL
            count += 1
            if progress and count % every == 0:
                progress(every)
    if progress:
        progress(count % every)
    return count


SUPPORT_COLUMNS = [
    "id", "ts", "prompt", "response", "context", "model", "provider", "prompt_slug", "topic",
    "customer_id", "user_id", "session_id", "environment", "input_tokens", "output_tokens",
    "latency_ms", "cost_usd", "status", "feedback", "metadata", "trace_id", "span_id",
    "parent_span_id", "step_kind",
]  # fmt: skip


def seed_demo(
    engine: sa.Engine, now: datetime, sizes: dict[str, int], progress: Progress | None = None
) -> dict[str, int]:
    """Replace the demo warehouse with fresh synthetic logs ending at `now`."""
    with engine.begin() as conn:
        conn.exec_driver_sql(query("demo", "create_raw_tables"))
        conn.exec_driver_sql(query("demo", "reset_demo"))
        counts = {
            "assay.llm_logs": copy_rows(
                conn, "assay.llm_logs", SUPPORT_COLUMNS,
                demo_data.support_bot_logs(sizes["support-bot"], now), progress,
            ),
            "demo_raw.openai_chat_logs": copy_rows(
                conn, "demo_raw.openai_chat_logs",
                ["id", "ts", "request", "response", "customer_id", "latency_ms"],
                demo_data.rag_openai_logs(sizes["search-rag"], now), progress,
            ),
            "demo_raw.otel_spans": copy_rows(
                conn, "demo_raw.otel_spans",
                ["span_id", "trace_id", "parent_span_id", "start_time", "end_time", "attributes"],
                demo_data.agent_otel_spans(sizes["agent-otel"], now), progress,
            ),
        }  # fmt: skip
        conn.exec_driver_sql(query("demo", "analyze_logs"))
    return counts
