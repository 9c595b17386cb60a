"""Backfills run in this process (no deployment): chunks, only the chosen evaluators, idempotent,
resumable, one budget across chunks, and the hourly watermark left alone."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flows.backfill import backfill
from flows.evaluate import evaluate_recent
from tasks.config import EvalJob, parse_job
from tasks.errors import ConfigError
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")
DAY0 = (datetime.now(UTC) - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
END = DAY0 + timedelta(days=3)


def job_for(fake: FakeLLM, **overrides: Any) -> EvalJob:
    return parse_job(
        {
            "deployment": "rag-app",
            "source": {"initial_lookback": "1h", "page_size": 40},
            "evaluators": [
                {"name": "pii"},
                {"name": "faithfulness", "model": "openai/judge", "api_base": fake.api_base},
                {"name": "context_relevance", "model": "openai/judge", "api_base": fake.api_base},
            ],
            "limits": {"default": {"retries": 0, "concurrency": 4}},
            "budget": {
                "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}
            },
            **overrides,
        }
    )


def three_days_of_logs(per_day: int = 30) -> list[dict[str, object]]:
    return [
        log(
            f"d{day}-{i:03d}",
            DAY0 + timedelta(days=day, minutes=30 * i),
            prompt=f"question {day}-{i}",
            context=json.dumps(["Refunds take 14 days."]),
            response=f"Refunds take 14 days ({i}).",
        )
        for day in range(3)
        for i in range(per_day)
    ]


def counts(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        per_evaluator = dict(
            conn.execute(sa.text("SELECT evaluator, count(*) FROM assay.scores GROUP BY 1")).all()
        )
        runs = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE parent_run_id IS NOT NULL) AS chunks, "
                "count(*) FILTER (WHERE parent_run_id IS NULL) AS parents "
                "FROM assay.eval_runs WHERE kind = 'backfill'"
            )
        ).one()
        watermark = conn.execute(sa.text("SELECT count(*) FROM assay.watermarks")).scalar_one()
    return {"scores": per_evaluator, "chunks": runs.chunks, "parents": runs.parents,
            "watermarks": watermark}  # fmt: skip


async def test_backfill_chunks_scores_only_the_chosen_evaluator_and_is_idempotent(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.8, True))))
    insert_logs(engine, three_days_of_logs())
    job = job_for(fake_llm)
    summary = await backfill(job, DAY0, END, evaluators=["faithfulness"], chunk=timedelta(days=1))
    first = counts(engine)
    assert summary.status == "completed" and summary.kind == "backfill"
    assert first["scores"] == {"faithfulness": 90}  # nothing else was run
    assert (first["chunks"], first["parents"], first["watermarks"]) == (3, 1, 0)
    assert summary.pulled == 90 and summary.scored == 90  # the parent sums its chunks
    calls = len(fake_llm.requests)
    assert calls == 90

    again = await backfill(job, DAY0, END, evaluators=["faithfulness"], chunk=timedelta(days=1))
    assert counts(engine)["scores"] == {"faithfulness": 90}
    assert len(fake_llm.requests) == calls  # nothing judged twice, nothing paid twice
    assert again.scored == 0

    # The hourly flow starts from its own window, untouched by the backfill.
    hourly = await evaluate_recent(job, until=END + timedelta(days=1))
    assert hourly.window_start is not None and hourly.window_start > END


async def test_a_half_finished_backfill_resumes_with_only_the_rest(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    # The judge fails for day 2's logs the first time: that chunk fails, the others complete.
    def flaky(_n: int, body: dict[str, Any]) -> Reply:
        if "question 2-" in json.dumps(body) and not healed:
            return Reply(status=400)
        return Reply(content=verdict(0.8, True))

    healed = False
    fake_llm.script("judge", flaky)
    insert_logs(engine, three_days_of_logs(per_day=10))
    job = job_for(fake_llm, evaluators=[{"name": "faithfulness", "model": "openai/judge",
                                         "api_base": fake_llm.api_base}])  # fmt: skip
    first = await backfill(job, DAY0, END, chunk=timedelta(days=1))
    with engine.connect() as conn:
        ok_before = conn.execute(
            sa.text("SELECT count(*) FROM assay.scores WHERE status = 'ok'")
        ).scalar_one()
        conn.execute(sa.text("DELETE FROM assay.scores WHERE status = 'error'"))
        conn.commit()
    assert first.status == "completed" and ok_before == 20
    healed = True
    calls = len(fake_llm.requests)
    await backfill(job, DAY0, END, chunk=timedelta(days=1))
    assert len(fake_llm.requests) - calls == 10  # only day 2's logs were judged again
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT log_id) FROM assay.scores")
        ).one()
    assert tuple(rows) == (30, 30)


async def test_one_budget_covers_every_chunk(engine: sa.Engine, fake_llm: FakeLLM) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.8, True))))
    insert_logs(engine, three_days_of_logs())
    job = job_for(fake_llm)
    summary = await backfill(
        job, DAY0, END, evaluators=["faithfulness"], budget_usd=0.002, chunk=timedelta(days=1)
    )
    with engine.connect() as conn:
        spent = conn.execute(
            sa.text("SELECT spent_usd, calls FROM assay.run_spend WHERE run_id = :r"),
            {"r": summary.run_id},
        ).one()
        cost = conn.execute(sa.text("SELECT sum(cost_usd) FROM assay.scores")).scalar_one()
    assert 0 < spent.spent_usd <= 0.002
    assert cost == pytest.approx(spent.spent_usd)
    assert spent.calls < 90  # the cap stopped the backfill before all 90 logs
    # The parent says what the budget left, not only its chunks' records.
    left = summary.details["sampling"]["unscored"]["faithfulness"]["all"]
    with engine.connect() as conn:
        chunk_left = conn.execute(sa.text(
            "SELECT sum((details -> 'sampling' -> 'unscored' -> 'faithfulness' ->> s.key)::int)"
            " FROM assay.eval_runs, jsonb_each(details -> 'sampling' -> 'unscored' -> "
            "'faithfulness') s WHERE parent_run_id = :r"), {"r": summary.run_id}).scalar_one()  # fmt: skip
    assert left == chunk_left > 0
    # Each chunk reports its own spend (the ledger row is the whole backfill's): they add up
    # to the parent's total instead of each claiming it.
    with engine.connect() as conn:
        chunks = conn.execute(sa.text(
            "SELECT details -> 'spend' AS spend FROM assay.eval_runs WHERE parent_run_id = :r"),
            {"r": summary.run_id}).scalars().all()  # fmt: skip
    assert len(chunks) == 3
    assert sum(c["run_spent_usd"] for c in chunks) == pytest.approx(spent.spent_usd)
    assert sum(c["run_calls"] for c in chunks) == spent.calls
    assert all(c["run_spent_usd"] <= c["budget_spent_usd"] <= 0.002 for c in chunks)
    assert summary.details["spend"]["run_spent_usd"] == pytest.approx(spent.spent_usd)
    from rich.console import Console

    from flows.render import summary_renderable

    console = Console(record=True, width=80)
    console.print(summary_renderable(summary, 80))
    assert f"unscored (budget): faithfulness {left:,}" in " ".join(console.export_text().split())


async def test_backfill_rejects_unknown_evaluators_and_empty_ranges(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    job = job_for(fake_llm)
    with pytest.raises(ConfigError, match="not in rag-app's job"):
        await backfill(job, DAY0, END, evaluators=["toxicity"])
    with pytest.raises(ConfigError, match="must be after start"):
        await backfill(job, END, DAY0)


def test_the_cli_refuses_a_bad_backfill_with_exit_code_2(engine: sa.Engine) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    args = ["backfill", "support-bot", "--start", DAY0.isoformat(), "--end", END.isoformat()]
    unknown = runner.invoke(app, [*args, "--evaluator", "no-such-judge"])
    assert unknown.exit_code == 2 and "has no evaluator 'no-such-judge'" in unknown.output
    bad_chunk = runner.invoke(app, [*args, "--chunk", "soon"])
    assert bad_chunk.exit_code == 2 and "is not a duration" in bad_chunk.output


async def test_empty_chunks_cost_one_count_query_not_a_run(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    """Three days of hourly chunks where logs sit in two hours: two chunk runs, every log
    scored, and the other 70 chunks counted as empty in the backfill's details."""
    insert_logs(engine, [
        log(f"h{hour}-{i}", DAY0 + timedelta(hours=hour, minutes=5 * i)) for hour in (3, 50)
        for i in range(4)
    ])  # fmt: skip
    job = parse_job({"deployment": "sparse", "evaluators": [{"name": "refusal"}]})

    summary = await backfill(job, DAY0, END, chunk=timedelta(hours=1))

    assert summary.status == "completed" and summary.scored == 8
    assert summary.details["planned_chunks"] == 72 and summary.details["empty_chunks"] == 70
    with engine.connect() as conn:
        chunks = conn.execute(sa.text(
            "SELECT window_start FROM assay.eval_runs WHERE parent_run_id = :parent "
            "ORDER BY window_start"), {"parent": summary.run_id}).scalars().all()  # fmt: skip
    assert chunks == [DAY0 + timedelta(hours=3), DAY0 + timedelta(hours=50)]
