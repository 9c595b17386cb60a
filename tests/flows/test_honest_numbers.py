"""Numbers labelled honestly: quarantine shares beside quality with a warning when they could
bias a comparison, empty answers evaluated when the team says they are real, and usage that
says "unknown" for a column the source does not have."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.analytics.report import build_report
from tasks.config import EvalJob, parse_job
from tests.cli import assay
from tests.conftest import insert_logs, log

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)


def job(**quality: Any) -> EvalJob:
    return parse_job({
        "deployment": "arena",
        "source": {"initial_lookback": "1d"},
        "evaluators": [{"name": "length", "params": {"min": 1}}, {"name": "refusal"}],
        "quality": {"max_invalid_fraction": 0.5, **quality},
    })  # fmt: skip


def arena_logs() -> list[dict[str, object]]:
    """Model b answers every tenth prompt with nothing at all (as AlpacaEval's gemini-pro did)."""
    rows = []
    for i in range(200):
        model = "model-a" if i % 2 else "model-b"
        empty = model == "model-b" and i % 10 == 0
        rows.append(log(f"q{i:03d}", BASE + timedelta(minutes=i), model=model,
                        response="" if empty else f"A real answer {i}."))  # fmt: skip
    return rows


async def test_quarantine_shares_sit_beside_quality_and_warn_of_bias(
    engine: sa.Engine, assay_env: str
) -> None:
    insert_logs(engine, arena_logs())
    await evaluate_recent(job(), until=BASE + timedelta(hours=4))
    report = build_report(engine, "arena", BASE, BASE + timedelta(hours=4), "model")
    usage = {u.segment: u for u in report.usage}
    assert usage["model-b"].quarantined == 20 and usage["model-a"].quarantined == 0
    assert usage["model-b"].quarantined_share == pytest.approx(0.2)
    [warning] = report.warnings
    assert "model=model-b" in warning and "biased" in warning
    assert build_report(engine, "arena", BASE, BASE + timedelta(hours=4), "all").warnings == []
    # Seen the way users see it, at 80 columns; the source has no cost column filled: "–".
    shown = assay("report", "arena", "--since", BASE.isoformat(), "--by", "model",
                  db_url=assay_env, columns=80)  # fmt: skip
    assert shown.returncode == 0
    assert "20 (20.0%)" in shown.stdout and "biased" in " ".join(shown.stdout.split())
    assert all(u.cost_usd is None for u in report.usage)


async def test_empty_responses_can_be_evaluated_as_real_failures(engine: sa.Engine) -> None:
    insert_logs(engine, arena_logs())
    summary = await evaluate_recent(job(empty_response="evaluate"), until=BASE + timedelta(hours=4))
    assert summary.quarantined == 0
    length = {e.evaluator: e for e in summary.evaluators}["length"]
    assert length.ok == 200 and length.ok - length.passed == 20  # the empty answers fail
    report = build_report(engine, "arena", BASE, BASE + timedelta(hours=4), "model")
    rates = {s.segment: s.pass_rate for s in report.evaluators if s.evaluator == "length"}
    assert rates["model-b"] == pytest.approx(0.8) and rates["model-a"] == 1.0
    assert report.warnings == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assay.quarantine")).scalar_one() == 0


async def test_usage_counts_every_log_read_once_whether_a_run_or_a_backfill_read_it(
    engine: sa.Engine,
) -> None:
    """The hourly run counts the logs it moves over; a backfill counts the history before them
    and nothing the hourly run counted; a second backfill counts nothing. So requests equal the
    logs scored, and the quarantine's share is of one population (it was of two: backfilled
    logs were scored and quarantined but missing from usage)."""
    from flows.backfill import backfill

    history = [log(f"old{i:02d}", BASE - timedelta(days=2, minutes=i)) for i in range(50)]
    insert_logs(engine, arena_logs() + history)
    until = BASE + timedelta(hours=4)
    await evaluate_recent(job(), until=until)  # the last day: 180 logs, 20 quarantined
    for _ in range(2):  # everything, history included, twice
        await backfill(job(), BASE - timedelta(days=3), until, chunk=timedelta(days=1))

    def count(sql: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())

    scored = count("SELECT count(*) FROM assay.scores WHERE evaluator = 'refusal'")
    requests = count("SELECT sum(requests) FROM assay.usage_rollups WHERE dim = 'all'")
    assert (scored, requests) == (230, 230)
    report = build_report(engine, "arena", BASE - timedelta(days=3), until, "all")
    [everything] = report.usage
    assert (everything.requests, everything.quarantined) == (230, 20)
    assert everything.quarantined_share == pytest.approx(20 / 250)


async def test_a_backfill_before_the_first_hourly_run_is_not_counted_twice(
    engine: sa.Engine,
) -> None:
    from flows.backfill import backfill

    insert_logs(engine, arena_logs())
    until = BASE + timedelta(hours=4)
    await backfill(job(), BASE - timedelta(days=1), until, chunk=timedelta(hours=12))
    await evaluate_recent(job(), until=until)  # reads the same logs: they are counted already
    with engine.connect() as conn:
        requests = conn.execute(sa.text(
            "SELECT sum(requests) FROM assay.usage_rollups WHERE dim = 'all'")).scalar_one()  # fmt: skip
    assert requests == 180
