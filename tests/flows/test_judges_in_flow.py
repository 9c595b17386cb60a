"""Judges inside the hourly flow: on the sample, after the free evaluators, bounded by a Prefect
global concurrency limit across concurrent runs, with health on the run record."""

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from flows.evaluate import evaluate_recent
from tasks.budget.sampling import sampled
from tasks.budget.slots import limit_name
from tasks.config import EvalJob, parse_job
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
UNTIL = BASE + timedelta(hours=2)


def judged_job(
    fake: FakeLLM, deployment: str = "rag-app", evaluators_extra: bool = False, **overrides: Any
) -> EvalJob:
    extra = [{"name": "refusal"}] if evaluators_extra else []
    return parse_job(
        {
            "deployment": deployment,
            "source": {"initial_lookback": "2d", "page_size": 25, "filters": {"topic": deployment}},
            "evaluators": [
                {"name": "pii"},
                *extra,
                {"name": "faithfulness", "model": "openai/judge", "api_base": fake.api_base},
            ],
            "limits": {"default": {"retries": 1, "backoff_s": 0.05, "concurrency": 4}},
            "budget": {
                "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}
            },
            **overrides,
        }
    )


def rag_logs(n: int, topic: str = "rag-app") -> list[dict[str, object]]:
    return [
        log(
            f"{topic}-{i:03d}",
            BASE + timedelta(minutes=i),
            topic=topic,
            context=json.dumps(["Refunds take 14 days."]),
            response="Refunds take 14 days.",
        )
        for i in range(n)
    ]


def judge_rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT log_id, status, score, weight, judge_model, cost_usd, reason "
                    "FROM assay.scores WHERE evaluator = 'faithfulness' ORDER BY log_id"
                )
            )
        )


async def test_judges_score_the_deterministic_sample_with_weights_and_cost(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "grounded"))))
    insert_logs(engine, rag_logs(60))
    job = judged_job(fake_llm, sampling={"rate": 0.5, "seed": "s1"})
    summary = await evaluate_recent(job, until=UNTIL)

    expected = sorted(
        r["id"] for r in rag_logs(60) if sampled("s1", "faithfulness", str(r["id"]), 0.5)
    )
    rows = judge_rows(engine)
    assert [r.log_id for r in rows] == expected  # exactly the hash-chosen half
    assert 15 < len(rows) < 45
    assert all(r.status == "ok" and r.weight == 2.0 for r in rows)
    assert all(r.judge_model == "openai/judge" and r.cost_usd > 0 for r in rows)
    assert len(fake_llm.requests) == len(rows)
    with engine.connect() as conn:
        free = conn.execute(sa.text("SELECT count(*) FROM assay.scores WHERE evaluator='pii'"))
        assert free.scalar_one() == 60  # free evaluators still see every log

    judged = next(r for r in summary.evaluators if r.evaluator == "faithfulness")
    assert judged.ok == len(rows) and judged.cost_usd > 0
    health = summary.details["judges"]["openai/judge"]
    assert health["calls"] == len(rows) and health["breaker"] is None

    # A rerun judges nothing again: the scores exist and the watermark moved.
    again = await evaluate_recent(job, until=UNTIL)
    assert again.scored == 0 and len(fake_llm.requests) == len(rows)


async def test_global_limit_is_created_and_bounds_concurrent_runs(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.latency = 0.1
    insert_logs(engine, rag_logs(30, "app-a") + rag_logs(30, "app-b"))
    limits = {"default": {"concurrency": 3, "global_concurrency": 3, "backoff_s": 0.05}}
    async with get_client() as client:  # an earlier test may have created it with another size
        with contextlib.suppress(ObjectNotFound, PrefectHTTPStatusError):
            await client.delete_global_concurrency_limit_by_name(limit_name("openai/judge"))
    jobs = [judged_job(fake_llm, name, limits=limits) for name in ("app-a", "app-b")]
    results = await asyncio.gather(*(evaluate_recent(j, until=UNTIL) for j in jobs))
    assert all(r.status == "completed" for r in results)
    assert len(fake_llm.requests) == 60
    # Each run may hold 3 slots locally; together they must stay within the global 3.
    assert fake_llm.peak_in_flight <= 3
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(limit_name("openai/judge"))
    assert limit.limit == 3 and limit.active


async def test_a_judge_outage_trips_the_breaker_and_skips_the_rest(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(status=503)))
    insert_logs(engine, rag_logs(40))
    job = judged_job(
        fake_llm,
        limits={
            "default": {"retries": 0, "concurrency": 1},
            "breaker": {"window": 5, "error_rate": 0.6},
        },
    )
    summary = await evaluate_recent(job, until=UNTIL)
    assert summary.status == "completed"
    statuses = [r.status for r in judge_rows(engine)]
    assert statuses.count("error") == 5 and statuses.count("skipped") == 35
    assert len(fake_llm.requests) == 5
    breaker = summary.details["judges"]["openai/judge"]["breaker"]
    assert breaker.startswith("circuit open for openai/judge: 5 of the last 5 calls failed")
    skipped = [r for r in judge_rows(engine) if r.status == "skipped"]
    assert all("circuit open" in r.reason and r.score is None for r in skipped)


async def test_the_offline_judge_runs_in_the_flow_without_any_server(engine: sa.Engine) -> None:
    insert_logs(engine, rag_logs(10))
    job = parse_job(
        {
            "deployment": "offline",
            "source": {"initial_lookback": "2d"},
            "evaluators": [{"name": "faithfulness"}, {"name": "toxicity"}],
        }
    )
    summary = await evaluate_recent(job, until=UNTIL)
    rows = judge_rows(engine)
    assert len(rows) == 10 and all(r.status == "ok" and r.score == 1.0 for r in rows)
    assert all(r.reason.startswith("[heuristic stand-in]") for r in rows)
    assert all(r.judge_model == "local/heuristic" and r.cost_usd == 0 for r in rows)
    assert "local/heuristic" in summary.details["judges"]


async def test_budget_caps_the_run_priority_goes_first_and_the_rest_is_counted(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "grounded"))))
    logs = rag_logs(40)
    for i, row in enumerate(logs):
        row["prompt"] = f"question {i}"  # distinct content: no dedupe
    logs[30]["response"] = "I cannot help with that."  # flagged by the refusal check
    logs[35]["feedback"] = "negative"
    insert_logs(engine, logs)
    job = judged_job(
        fake_llm,
        evaluators_extra=True,
        sampling={"rate": 1.0, "priority": ["flagged", "negative_feedback"]},
        # priority applies within a batch: one page holds the whole window here
        source={"initial_lookback": "2d", "page_size": 100, "filters": {"topic": "rag-app"}},
    )
    capped = job.model_copy(
        update={"budget": job.budget.model_copy(update={"max_calls_per_run": 5})}
    )
    summary = await evaluate_recent(capped, until=UNTIL)
    sampling = summary.details["sampling"]
    judged = judge_rows(engine)
    assert len(fake_llm.requests) == 5 and len(judged) == 5
    assert {"rag-app-030", "rag-app-035"} <= {r.log_id for r in judged}  # priority first
    eligible = sum(
        c["sampled"] + c["priority"] for c in sampling["strata"]["faithfulness"].values()
    )
    unscored = sum(sampling["unscored"]["faithfulness"].values())
    assert eligible == 40 and unscored == eligible - len(judged)
    assert summary.details["spend"]["run_calls"] == 5


async def test_a_judge_without_a_price_is_refused(engine: sa.Engine, fake_llm: FakeLLM) -> None:
    from tasks.errors import ConfigError

    insert_logs(engine, rag_logs(3))
    job = judged_job(fake_llm, budget={})
    with pytest.raises(ConfigError, match="no known price for judge model"):
        await evaluate_recent(job, until=UNTIL)
    assert fake_llm.requests == []


async def test_identical_logs_are_judged_once(engine: sa.Engine, fake_llm: FakeLLM) -> None:
    logs = rag_logs(30)
    for row in logs:
        row["prompt"] = "How long do refunds take?"  # same prompt, response, context
    insert_logs(engine, logs)
    summary = await evaluate_recent(judged_job(fake_llm), until=UNTIL)
    rows = judge_rows(engine)
    assert len(rows) == 30 and len(fake_llm.requests) == 1
    assert sum(r.reason.startswith("duplicate of log") for r in rows) == 29
    assert sum(r.cost_usd for r in rows) == max(r.cost_usd for r in rows)  # copies cost nothing
    assert summary.details["sampling"]["duplicates_copied"] == 29


def test_estimate_projects_sample_and_cost_without_calling_a_judge(
    engine: sa.Engine, fake_llm: FakeLLM, tmp_path: Any
) -> None:
    import yaml
    from typer.testing import CliRunner

    from flows.cli import app

    logs = rag_logs(80)
    for i, row in enumerate(logs):
        row["prompt"] = f"question {i}"
        row["model"] = "small-model" if i < 8 else "big-model"
    insert_logs(engine, logs)
    job = judged_job(
        fake_llm,
        sampling={"rate": 0.1, "stratify_by": ["model"], "min_per_stratum": 5},
        budget={
            "max_usd_per_run": 0.0001,
            "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}},
        },
        source={"initial_lookback": "2d", "page_size": 500, "filters": {"topic": "rag-app"}},
    )
    path = tmp_path / "rag-app.yaml"
    path.write_text(yaml.safe_dump(job.model_dump(mode="json")))
    args = ["estimate", "rag-app", "--config", str(path), "--format", "json",
            "--start", (BASE - timedelta(hours=1)).isoformat(), "--end", UNTIL.isoformat()]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["logs"] == 80 and fake_llm.requests == []
    [faith] = report["evaluators"]
    strata = faith["strata"]
    assert strata["model=small-model"]["population"] == 8
    assert strata["model=small-model"]["sampled"] >= 5  # the small model is covered
    assert faith["eligible"] == sum(c["sampled"] for c in strata.values())
    assert faith["projected_usd"] > 0.0001
    assert report["verdict"].startswith("over budget")
