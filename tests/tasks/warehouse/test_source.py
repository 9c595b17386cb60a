"""Keyset pages from real Postgres: ordered by (ts, id), ties broken by id, filters bound."""

from datetime import timedelta

import sqlalchemy as sa

from tasks.config import parse_job
from tasks.store.rows import Cursor
from tasks.warehouse.source import fetch_page
from tests.conftest import insert_logs, log, utc

T0 = utc(2026, 3, 1, 12)


def test_keyset_pages_cover_every_row_once_even_with_equal_timestamps(engine: sa.Engine) -> None:
    # 25 rows, five per timestamp: pages of 10 must split ties by id without gap or overlap.
    insert_logs(engine, [log(f"id{i:02d}", T0 + timedelta(seconds=i // 5)) for i in range(25)])
    source = parse_job({"deployment": "d", "source": {"page_size": 10}}).source
    seen: list[str] = []
    after = None
    with engine.connect() as conn:
        while True:
            rows = fetch_page(conn, source, after, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
            seen += [r["id"] for r in rows]
            if len(rows) < source.page_size:
                break
            after = Cursor(ts=rows[-1]["ts"], log_id=rows[-1]["id"])
    assert seen == [f"id{i:02d}" for i in range(25)]


def test_upper_bound_and_filters(engine: sa.Engine) -> None:
    insert_logs(
        engine,
        [
            log("a", T0, environment="production"),
            log("b", T0, environment="staging"),
            log("c", T0 + timedelta(hours=2), environment="production"),
            log("d", T0, environment="x' OR '1'='1"),
        ],
    )
    source = parse_job(
        {"deployment": "d", "source": {"filters": {"environment": "production"}}}
    ).source
    with engine.connect() as conn:
        rows = fetch_page(conn, source, None, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
        assert [r["id"] for r in rows] == ["a"]
        hostile = parse_job(
            {"deployment": "d", "source": {"filters": {"environment": "x' OR '1'='1"}}}
        ).source
        rows = fetch_page(conn, hostile, None, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
        assert [r["id"] for r in rows] == ["d"]  # matched literally, not as SQL


def test_query_source_with_integer_ids_and_renamed_columns(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE public.calls (call_id bigint, created timestamptz, q text)")
        )
        conn.execute(
            sa.text(
                "INSERT INTO public.calls SELECT g, :t, 'q' || g FROM generate_series(1, 12) g"
            ),
            {"t": T0},
        )
    source = parse_job(
        {
            "deployment": "d",
            "source": {
                "query": "SELECT call_id, created, q FROM public.calls WHERE call_id <> 5",
                "columns": {"id": "call_id", "ts": "created", "prompt": "q", **dict.fromkeys(
                    ["response", "context", "model", "provider", "prompt_slug", "topic",
                     "customer_id", "user_id", "session_id", "trace_id", "span_id", "parent_span_id",
                     "step_kind", "environment", "input_tokens",
                     "output_tokens", "latency_ms", "cost_usd", "status", "feedback", "metadata"])},
                "page_size": 10,
            },
        }
    ).source  # fmt: skip
    with engine.connect() as conn:
        first = fetch_page(conn, source, None, T0 - timedelta(hours=1), T0)
        # Integer ids sort numerically (9 before 10), also when resumed from a text watermark.
        assert [r["id"] for r in first] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
        rest = fetch_page(conn, source, Cursor(ts=T0, log_id="10"), T0 - timedelta(hours=1), T0)
        assert [r["id"] for r in rest] == [11, 12]
        assert set(first[0]) == {"id", "ts", "prompt"}
