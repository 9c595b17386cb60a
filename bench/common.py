"""Benchmark plumbing shared by the benches: a throwaway database and seeded canonical logs."""

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ADMIN = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
END = datetime(2026, 1, 1, tzinfo=UTC)

SEED_SQL = """
INSERT INTO assay.llm_logs
SELECT 'log-' || lpad(g::text, 8, '0'),
       %(end)s::timestamptz - make_interval(secs => (%(n)s - g) * 0.5),
       (ARRAY['Where is my order? It was due Monday and tracking shows nothing new.',
              'How do I get a refund for the headphones, they stopped working last week?',
              'Does the smart thermostat work with HomeKit and Google Home at the same time?',
              'I cannot log in, the reset email never arrives, what should I do now?'])[1 + g %% 4]
         || repeat(' Please explain in detail, with the steps I should take and any caveats.', 8),
       (ARRAY['Your order left our warehouse and should arrive within two business days.',
              'You can return the item within thirty days for a full refund to your card.',
              'Yes, it supports HomeKit, Google Home and Alexa out of the box, all at once.',
              'Check your spam folder first; otherwise use the reset-by-text option instead.'])[1 + g %% 4]
         || repeat(' Let me know if there is anything else I can help you with today, thanks.', 12),
       '["Orders ship within two business days and refunds take thirty days."]'::jsonb,
       (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-haiku', 'gemini-1.5-flash'])[1 + g %% 4],
       (ARRAY['openai', 'openai', 'anthropic', 'google'])[1 + g %% 4],
       (ARRAY['order_status', 'refund_policy', 'product_qa', 'account_help'])[1 + g %% 4],
       'support', 'cust-' || (g %% 50), 'u' || (g %% 5000), 's' || (g %% 20000), 'production',
       300 + g %% 200, 150 + g %% 100, 400 + g %% 3000, 0.0004, 'ok', NULL, '{}'::jsonb
FROM generate_series(1, %(n)s) AS g
"""


def create_database() -> tuple[str, str, str]:
    """A fresh database: (name, psycopg conninfo, SQLAlchemy URL)."""
    name = f"assay_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(ADMIN) | {"dbname": name}
    conninfo = psycopg.conninfo.make_conninfo("", **params)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    return (
        name,
        conninfo,
        f"postgresql+psycopg://{params.get('user', 'postgres')}@{host}:{port}/{name}",
    )


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_database() -> Iterator[tuple[str, Any]]:
    """A fresh database with every migration applied: (psycopg conninfo, SQLAlchemy engine);
    dropped afterwards."""
    from tasks.store.db import _engine, migrate

    name, conninfo, url = create_database()
    try:
        engine = _engine(url)
        migrate(engine)
        yield conninfo, engine
        engine.dispose()
    finally:
        drop_database(name)


def seed(conninfo: str, n: int) -> float:
    """Insert `n` canonical logs ending at END; returns the seconds it took."""
    start = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute(SEED_SQL, {"n": n, "end": END})
        conn.execute("ANALYZE assay.llm_logs")
    return time.perf_counter() - start


@contextmanager
def fake_server(latency: float, rpm: int | None = None) -> Iterator[str]:
    """The fake LLM in a child process, so its CPU is not counted as the client's."""
    args = [sys.executable, "-m", "tests.fakes.llm", "--latency", str(latency)]
    if rpm:
        args += ["--rpm", str(rpm)]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        args, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def server_stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/_stats") as response:
        return json.loads(response.read())
