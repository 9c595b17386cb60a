"""One paid call per score key across runs: a scheduled run and a backfill started together over
the same window make one judge call per log (20, not 40), and the ledger equals the scores'
cost. A claim of a run that is no longer running is taken over."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists

from flows.backfill import backfill
from flows.evaluate import evaluate_recent
from tasks.budget.claims import claim_plan
from tasks.budget.sampling import plan_page
from tasks.budget.slots import limit_name
from tasks.config import SamplingConfig, build_evaluators, parse_job
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict
from tests.hostile.test_money import ledger_and_scores

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)


def job(fake: FakeLLM) -> object:
    return parse_job({
        "deployment": "overlap",
        "source": {"initial_lookback": "1d", "page_size": 10},
        "evaluators": [{"name": "toxicity", "model": "openai/judge", "api_base": fake.api_base}],
        "sampling": {"dedupe": False},
        "limits": {"default": {"concurrency": 20, "retries": 0}},
        "budget": {"max_usd_per_day": 10,
                   "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}},
    })  # fmt: skip


async def test_a_backfill_beside_the_scheduled_run_pays_once_per_log(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.latency = 1.0  # each run judges for ~10 s: they overlap whatever starts first
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True))))
    insert_logs(engine, [log(f"o{i:02d}", BASE + timedelta(minutes=i)) for i in range(20)])
    overlap = job(fake_llm)
    # Room for both runs' slots at once (an operator who raised the model's global limit, or
    # two workers): without claims, both plan and judge the same page.
    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=limit_name("openai/judge"), limit=40)
            )

    scheduled, backfilled = await asyncio.gather(
        evaluate_recent(overlap, until=BASE + timedelta(hours=1)),
        backfill(overlap, start=BASE - timedelta(hours=1), end=BASE + timedelta(hours=1),
                 chunk=timedelta(days=1)),
    )  # fmt: skip

    assert scheduled.status == "completed" and backfilled.status == "completed"
    assert len(fake_llm.requests_for("judge")) == 20  # was 40: one verdict of each pair dropped
    with engine.connect() as conn:
        judged = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT log_id) FROM assay.scores WHERE evaluator = 'toxicity'"
        )).one()  # fmt: skip
        claims = conn.execute(sa.text("SELECT count(*) FROM assay.judge_claims")).scalar_one()
    assert tuple(judged) == (20, 20) and claims == 0  # every claim ended with its page
    day, runs, scores = ledger_and_scores(engine)
    assert scores > 0 and day == pytest.approx(scores) and runs == pytest.approx(scores)


def test_a_claim_of_a_run_that_stopped_is_taken_over(engine: sa.Engine, fake_llm: FakeLLM) -> None:
    claimed = job(fake_llm)
    paid = build_evaluators(claimed)  # type: ignore[arg-type]
    from evaluators.records import LogRecord

    records = [LogRecord(id=f"c{i}", ts=BASE, prompt="p", response="r") for i in range(4)]
    plan = plan_page(records, paid, SamplingConfig(rate=1.0, dedupe=False), set())
    live, dead = str(uuid.uuid4()), str(uuid.uuid4())
    with engine.begin() as conn:
        for run_id, status in ((live, "running"), (dead, "failed")):
            conn.execute(sa.text(
                "INSERT INTO assay.eval_runs (run_id, deployment, kind, status, started_at, window_end) "
                "VALUES (:r, 'overlap', 'backfill', :s, now(), now())"), {"r": run_id, "s": status})  # fmt: skip

    kept, held = claim_plan(engine, "overlap", live, plan, paid)
    assert len(kept.items) == 4 and held == 0
    mine, left = claim_plan(engine, "overlap", str(uuid.uuid4()), plan, paid)
    assert mine.items == [] and left == 4  # a live run's claims are left to it
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE assay.judge_claims SET run_id = :d"), {"d": dead})
    taken, left = claim_plan(engine, "overlap", live, plan, paid)
    assert len(taken.items) == 4 and left == 0  # the failed run's claims are taken over
