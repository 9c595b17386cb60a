"""`assay quarantine` says what to fix: how many logs each reason holds (over every row, not the
50 listed), the offending value of each (masked), and every row with `--all`."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


async def test_counts_per_reason_the_offending_value_and_every_row(
    engine: sa.Engine, assay_env: str
) -> None:
    logs = [log(f"ok{i:03d}", BASE + timedelta(seconds=i)) for i in range(400)]
    logs += [log(f"bad{i:03d}", BASE + timedelta(seconds=i), status="thumbs-up") for i in range(60)]
    logs += [log(f"empty{i}", BASE, response=None) for i in range(3)]
    insert_logs(engine, logs)
    job = parse_job({"deployment": "q-app", "source": {"initial_lookback": "2d"},
                     "evaluators": [{"name": "pii"}]})  # fmt: skip
    summary = await evaluate_recent(job, until=BASE + timedelta(hours=1))
    assert summary.status == "completed" and summary.quarantined == 63

    listed = assay("quarantine", "q-app", "--limit", "5", db_url=assay_env, columns=100)
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    assert "63 quarantined logs" in out and "by reason" in out
    # The status expectation holds 60 of them, the empty responses 3; each row says its value.
    lines = out.splitlines()
    assert any("be_in_set(status)" in line and line.split()[-1] == "60" for line in lines), out
    assert any("not_be_null(response)" in line and line.split()[-1] == "3" for line in lines), out
    assert "got 'thumbs-up'" in out
    assert "5 of 63 shown" in out and "--all" in out

    every = assay("quarantine", "q-app", "--all", "--format", "json", db_url=assay_env)
    assert every.returncode == 0, every.stderr
    rows = json.loads(every.stdout)
    assert len(rows) == 63 and len({r["log_id"] for r in rows}) == 63
