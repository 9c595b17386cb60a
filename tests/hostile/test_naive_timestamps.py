"""One rule for naive timestamps: a `timestamp without time zone` column is UTC, in SQL and in
Python alike, whatever the server's TimeZone (America/New_York once scored 0 of 25 logs and
lost 10 that were counted as pulled)."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.conftest import insert_logs, log

BASE = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)


@pytest.mark.usefixtures("prefect_api")
async def test_naive_timestamps_on_a_new_york_server_are_all_scored(engine: sa.Engine) -> None:
    insert_logs(engine, [log(f"n{i:02d}", BASE + timedelta(minutes=10 * i)) for i in range(25)])
    with engine.begin() as conn:
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        conn.execute(sa.text(f"ALTER DATABASE \"{database}\" SET TimeZone = 'America/New_York'"))
        conn.execute(sa.text(
            "CREATE TABLE public.naive_logs AS SELECT id, (ts AT TIME ZONE 'UTC') AS ts, prompt, "
            "response FROM assay.llm_logs"))  # fmt: skip
    engine.dispose()  # new sessions pick up the database's TimeZone
    with sa.create_engine(engine.url).connect() as raw:  # the trap: the server's own zone
        assert raw.execute(sa.text("SHOW TimeZone")).scalar_one() == "America/New_York"
    job = parse_job({"deployment": "naive", "evaluators": [{"name": "refusal"}],
                     "source": {"table": "public.naive_logs", "initial_lookback": "1d",
                                "lag": "5m"}})  # fmt: skip

    summary = await evaluate_recent(job, until=BASE + timedelta(hours=5))

    assert summary.status == "completed"
    assert summary.scored == 25 and summary.pulled == 25 and summary.quarantined == 0
