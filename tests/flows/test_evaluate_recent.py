"""The hourly flow on real Prefect and Postgres: scores exactly once, watermark without gaps."""

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from evaluators import Cost, EvalContext, Evaluator, LogRecord, Score, registered
from flows.evaluate import evaluate_recent
from tasks.config import EvalJob, parse_job
from tasks.errors import RunBusy
from tasks.store.runs import deployment_lock
from tests.conftest import insert_logs, log

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
EVALUATORS = [{"name": "pii"}, {"name": "refusal"}, {"name": "length", "params": {"min": 5}}]


@registered
class Exploding(Evaluator):
    """Test evaluator that raises on prompts containing 'boom'."""

    name: ClassVar[str] = "test_exploding"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        if "boom" in record.prompt:
            raise RuntimeError("detector crashed")
        return Score.verdict(True)


def job(**source: Any) -> EvalJob:
    return parse_job(
        {
            "deployment": "test-app",
            "source": {"initial_lookback": "2d", "page_size": 10, **source},
            "evaluators": EVALUATORS,
        }
    )


def scores(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT log_id, evaluator FROM assay.scores ORDER BY 1, 2"))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def watermark(engine: sa.Engine) -> tuple[datetime, str]:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT ts, log_id FROM assay.watermarks")).one()
        return row.ts, row.log_id


async def test_run_scores_every_valid_log_and_quarantines_the_rest(engine: sa.Engine) -> None:
    insert_logs(
        engine,
        [log(f"l{i:02d}", BASE + timedelta(minutes=i)) for i in range(23)]
        + [
            log("bad-prompt", BASE, prompt=None),
            log("bad-tokens", BASE, input_tokens=-1),
            log("leak", BASE, response="mail jane@example.com now"),
        ],
    )
    summary = await evaluate_recent(job(), until=BASE + timedelta(hours=1))
    assert (summary.status, summary.pulled, summary.quarantined) == ("completed", 26, 2)
    assert summary.normalized == 24 and summary.scored == 24 * 3
    assert len(scores(engine)) == 24 * 3
    pii = next(r for r in summary.evaluators if r.evaluator == "pii")
    assert (pii.ok, pii.passed) == (24, 23)
    with engine.connect() as conn:
        quarantined = dict(
            conn.execute(sa.text("SELECT log_id, reasons::text FROM assay.quarantine")).all()
        )
        run = conn.execute(sa.text("SELECT status, pulled, scored FROM assay.eval_runs")).one()
    assert set(quarantined) == {"bad-prompt", "bad-tokens"}
    assert "prompt" in quarantined["bad-prompt"] and "input_tokens" in quarantined["bad-tokens"]
    assert tuple(run) == ("completed", 26, 72)


async def test_watermark_has_no_gap_or_overlap_and_late_rows_are_caught(engine: sa.Engine) -> None:
    insert_logs(engine, [log(f"a{i:02d}", BASE + timedelta(minutes=i)) for i in range(40)])
    first = await evaluate_recent(job(), until=BASE + timedelta(minutes=25))
    assert first.pulled == 26  # minutes 0..25 inclusive
    assert watermark(engine) == (BASE + timedelta(minutes=25), "a25")

    # Rows logged late (after run 1 ended) but newer than its window end, plus equal-ts ties.
    insert_logs(
        engine,
        [log("late1", BASE + timedelta(minutes=26)), log("a25b", BASE + timedelta(minutes=25))],
    )
    second = await evaluate_recent(job(), until=BASE + timedelta(minutes=60))
    assert second.pulled == 14 + 2  # a26..a39, late1 and the tie a25b (id after a25)
    ids = [log_id for log_id, evaluator in scores(engine) if evaluator == "pii"]
    assert sorted(ids) == sorted([f"a{i:02d}" for i in range(40)] + ["late1", "a25b"])
    assert len(scores(engine)) == len(ids) * 3


async def test_lag_holds_back_the_newest_logs(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    insert_logs(
        engine, [log("old", now - timedelta(minutes=30)), log("fresh", now - timedelta(seconds=30))]
    )
    summary = await evaluate_recent(job(lag="5m"))
    assert summary.pulled == 1
    assert {log_id for log_id, _ in scores(engine)} == {"old"}


async def test_rerun_adds_nothing_even_from_a_reset_watermark(engine: sa.Engine) -> None:
    insert_logs(engine, [log(f"r{i:02d}", BASE + timedelta(minutes=i)) for i in range(15)])
    until = BASE + timedelta(hours=1)
    await evaluate_recent(job(), until=until)
    before = scores(engine)
    again = await evaluate_recent(job(), until=until)
    assert (again.pulled, again.scored) == (0, 0)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM assay.watermarks"))
    replay = await evaluate_recent(job(), until=until)
    assert (replay.pulled, replay.scored) == (15, 0)
    assert scores(engine) == before


async def test_an_evaluator_that_raises_yields_error_rows_and_the_run_goes_on(
    engine: sa.Engine,
) -> None:
    insert_logs(engine, [log("ok1", BASE), log("crash", BASE, prompt="boom please")])
    exploding = parse_job(
        {"deployment": "test-app", "source": {"initial_lookback": "2d"},
         "evaluators": [{"name": "test_exploding"}]}
    )  # fmt: skip
    summary = await evaluate_recent(exploding, until=BASE + timedelta(hours=1))
    assert summary.status == "completed" and summary.errors == 1
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, score, reason FROM assay.scores WHERE log_id = 'crash'")
        ).one()
    assert row.status == "error" and row.score is None
    assert "RuntimeError: detector crashed" in row.reason


async def test_a_second_concurrent_run_of_the_same_deployment_is_refused(engine: sa.Engine) -> None:
    with deployment_lock(engine, "test-app"), pytest.raises(RunBusy, match="in progress"):
        await evaluate_recent(job(), until=BASE)


async def test_a_source_error_fails_the_run_and_records_why(engine: sa.Engine) -> None:
    from tasks.errors import ConfigError

    broken = job(table="assay.no_such_table")
    with pytest.raises(ConfigError, match="no_such_table"):
        await evaluate_recent(broken, until=BASE)
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT status, error FROM assay.eval_runs")).one()
    assert run.status == "failed" and "no_such_table" in run.error
