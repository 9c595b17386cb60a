"""Connections that come back: every session of a run terminated mid-judging
(`pg_terminate_backend`) costs no score, writes no error, and leaves nothing to pay twice."""

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tasks.errors import LockLost
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
LOGS = 400


def terminate_when(fake: FakeLLM, requests: int, admin_url: str, database: str) -> threading.Thread:
    """Once the judge has seen `requests` calls, terminate every session on the test database."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(fake.requests) < requests and time.monotonic() < deadline:
            time.sleep(0.005)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


async def test_terminated_sessions_mid_run_lose_nothing_and_duplicate_nothing(
    engine: sa.Engine, fake_llm: FakeLLM, admin_url: str
) -> None:
    fake_llm.latency = 0.02
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    insert_logs(engine, [log(f"c{i:03d}", BASE + timedelta(seconds=i * 5)) for i in range(LOGS)])
    job = parse_job(
        {
            "deployment": "dropped",
            "source": {"initial_lookback": "1d", "page_size": 50},
            "evaluators": [
                {"name": "refusal"},
                {"name": "toxicity", "model": "openai/judge", "api_base": fake_llm.api_base},
            ],
            "sampling": {"dedupe": False},
            "budget": {"max_usd_per_day": 50,
                       "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}},
            "limits": {"default": {"concurrency": 8, "retries": 1}},
        }
    )  # fmt: skip
    until = BASE + timedelta(hours=1)
    watcher = terminate_when(fake_llm, 120, admin_url, engine.url.database or "")

    try:
        first = await evaluate_recent(job, until=until)
        outcome = first.status
    except LockLost:  # the deployment lock went with its session: the run stopped, not unlocked
        outcome = "lock lost"
    watcher.join(timeout=5)
    assert outcome in ("completed", "lock lost")
    with engine.connect() as conn:
        errors = conn.execute(
            sa.text("SELECT count(*) FROM assay.scores WHERE status = 'error'")
        ).scalar_one()
        if outcome == "lock lost":
            status = conn.execute(
                sa.text("SELECT status, error FROM assay.eval_runs ORDER BY started_at LIMIT 1")
            ).one()
            assert status.status == "failed" and "lock was lost" in status.error
    assert errors == 0  # a dropped connection is never a score

    second = await evaluate_recent(job, until=until)

    assert second.status == "completed"
    with engine.connect() as conn:
        per_evaluator = dict(
            conn.execute(sa.text("SELECT evaluator, count(*) FROM assay.scores GROUP BY 1")).all()
        )
        distinct = conn.execute(
            sa.text("SELECT count(DISTINCT (log_id, evaluator)) FROM assay.scores")
        ).scalar_one()
        statuses = set(conn.execute(sa.text("SELECT DISTINCT status FROM assay.scores")).scalars())
        spent = conn.execute(sa.text("SELECT sum(spent_usd) FROM assay.spend")).scalar_one()
        reserved = conn.execute(sa.text("SELECT sum(reserved_usd) FROM assay.spend")).scalar_one()
        cost = conn.execute(sa.text("SELECT sum(cost_usd) FROM assay.scores")).scalar_one()
    assert per_evaluator == {"refusal": LOGS, "toxicity": LOGS}  # every log, exactly once
    assert distinct == 2 * LOGS and statuses == {"ok"}
    assert reserved == pytest.approx(0, abs=1e-9)
    assert cost > 0 and spent == pytest.approx(cost)  # the ledger equals the scores' cost


async def test_a_warehouse_connection_terminated_mid_page_is_retried_and_nothing_is_lost(
    engine: sa.Engine, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warehouse read alone is cut (a failover, an idle-session killer): the page is retried
    on a fresh connection and the run completes, every log scored once."""
    from tasks.settings import get_settings

    insert_logs(engine, [log(f"w{i:02d}", BASE + timedelta(minutes=i)) for i in range(30)])
    with engine.begin() as conn:  # a slow warehouse: each page takes about a second to read
        conn.execute(sa.text(
            "CREATE VIEW public.slow_logs AS SELECT l.* FROM assay.llm_logs l, "
            "LATERAL (SELECT pg_sleep(0.1)) AS slow"
        ))  # fmt: skip
    warehouse = engine.url.set(query={"application_name": "assay-warehouse"})
    monkeypatch.setenv("ASSAY_WAREHOUSE_URL", warehouse.render_as_string(hide_password=False))
    get_settings.cache_clear()
    job = parse_job({"deployment": "cut", "evaluators": [{"name": "refusal"}],
                     "source": {"table": "public.slow_logs", "initial_lookback": "1d",
                                "page_size": 10}})  # fmt: skip

    cut: list[int] = []

    def cut_once() -> None:
        deadline = time.monotonic() + 60
        with psycopg.connect(admin_url, autocommit=True) as admin:
            while time.monotonic() < deadline:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'assay-warehouse' AND state = 'active' "
                    "AND query LIKE '%%slow_logs%%'"
                ).fetchone()
                if killed and killed[0]:
                    cut.append(killed[0])
                    return
                time.sleep(0.02)

    cutter = threading.Thread(target=cut_once, daemon=True)
    cutter.start()
    summary = await evaluate_recent(job, until=BASE + timedelta(hours=1))
    cutter.join(timeout=5)
    get_settings.cache_clear()

    assert cut, "the warehouse connection was never cut mid-read"
    assert summary.status == "completed" and summary.pulled == 30
    with engine.connect() as conn:
        scored = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT log_id) FROM assay.scores")
        ).one()
    assert tuple(scored) == (30, 30)
