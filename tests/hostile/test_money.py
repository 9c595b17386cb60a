"""Money is counted right: a provider that reports no usage, or negative usage, cannot make the
ledger and the scores disagree or loosen the daily cap. Replays spend under the same caps."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from flows.replay import replay_quarantine
from tasks.config import parse_job
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=4)).replace(microsecond=0)
PRICES = {"openai/judge": {"input_usd_per_mtok": 100, "output_usd_per_mtok": 200}}


def completion(usage: dict[str, int] | None) -> str:
    body: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": verdict(0.9, True, "fine")}}],
    }  # fmt: skip
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body)


def job(**budget: Any) -> Any:
    return lambda api_base: parse_job(
        {
            "deployment": "money",
            "source": {"initial_lookback": "1d"},
            "evaluators": [{"name": "toxicity", "model": "openai/judge", "api_base": api_base}],
            "budget": {"prices": PRICES, **budget},
            "limits": {"default": {"retries": 0}},
            "quality": {"max_invalid_fraction": 1.0},
        }
    )


def ledger_and_scores(engine: sa.Engine) -> tuple[float, float, float]:
    with engine.connect() as conn:
        day = conn.execute(
            sa.text("SELECT coalesce(sum(spent_usd), 0) FROM assay.spend")
        ).scalar_one()
        runs = conn.execute(
            sa.text("SELECT coalesce(sum(spent_usd), 0) FROM assay.run_spend")
        ).scalar_one()
        scores = conn.execute(
            sa.text("SELECT coalesce(sum(cost_usd), 0) FROM assay.scores")
        ).scalar_one()
    return day, runs, scores


@pytest.mark.parametrize(
    "usage",
    [None, {"prompt_tokens": -20000, "completion_tokens": -5000, "total_tokens": -25000}],
    ids=["missing", "negative"],
)
async def test_unbelievable_usage_is_charged_at_the_worst_case_on_both_sides(
    engine: sa.Engine, fake_llm: FakeLLM, usage: dict[str, int] | None
) -> None:
    fake_llm.script("judge", always(Reply(body=completion(usage))))
    insert_logs(engine, [log(f"m{i}", BASE + timedelta(minutes=i)) for i in range(5)])

    summary = await evaluate_recent(
        job(max_usd_per_day=10)(fake_llm.api_base), until=BASE + timedelta(hours=1)
    )

    assert summary.status == "completed"
    day, runs, scores = ledger_and_scores(engine)
    assert scores > 0  # never recorded as free
    assert day == pytest.approx(scores) and runs == pytest.approx(scores)
    with engine.connect() as conn:
        costs = conn.execute(sa.text("SELECT cost_usd FROM assay.scores")).scalars().all()
    assert len(costs) == 5 and all(c is not None and c > 0 for c in costs)


async def test_a_replay_spends_inside_the_per_run_cap(engine: sa.Engine, fake_llm: FakeLLM) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    insert_logs(
        engine, [log(f"q{i:02d}", BASE + timedelta(minutes=i), prompt=None) for i in range(30)]
    )
    make = job(max_usd_per_run=0.5)  # a worst case is ~0.09: a handful of calls
    first = await evaluate_recent(make(fake_llm.api_base), until=BASE + timedelta(hours=1))
    assert first.quarantined == 30 and not fake_llm.requests
    with engine.begin() as conn:  # the source is fixed; the logs can be replayed
        conn.execute(sa.text("UPDATE assay.llm_logs SET prompt = 'fixed question ' || id"))

    summary = await replay_quarantine(make(fake_llm.api_base))

    assert summary.status == "completed"
    _day, runs, scores = ledger_and_scores(engine)
    assert 0 < scores <= 0.5 and runs == pytest.approx(scores)
    assert len(fake_llm.requests) < 30  # the cap stopped it: a replay is not outside the budget
