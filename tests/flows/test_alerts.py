"""Slack alerts end to end: real Postgres, Prefect, slack-sdk over HTTP to the fake Slack.

Breaches need statistical evidence, notify once, remind after the cooldown and recover once;
judge outages are told apart from quality drops; a Slack outage delays messages but loses none
and sends none twice; payloads stay inside Block Kit limits and carry no secrets or PII.
"""

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import EvalJob, parse_job
from tasks.errors import DataContractBroken
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.usefixtures("prefect_api")
START = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
REFUSAL = "I cannot help with that request."
_ids = count()


def job(rule: dict[str, Any] | None = None, **alerts: Any) -> EvalJob:
    return parse_job(
        {
            "deployment": "bot",
            "source": {"initial_lookback": "3d"},
            "evaluators": [{"name": "refusal"}],
            "alerts": {
                "rules": [rule or {"evaluator": "refusal", "metric": "pass_rate", "op": "<",
                                   "value": 0.9}],
                **alerts,
            },
        }
    )  # fmt: skip


def traffic(engine: sa.Engine, hour: int, n: int, refusals: int, **fields: Any) -> datetime:
    """`n` logs in hour `hour` after START, `refusals` of them refusing; returns the hour's end."""
    base = START + timedelta(hours=hour)
    rows = [
        log(
            f"h{hour:02d}-{next(_ids):05d}",
            base + timedelta(seconds=i),
            response=REFUSAL if i < refusals else "Here is how to do it.",
            **fields,
        )
        for i in range(n)
    ]
    insert_logs(engine, rows)
    return base + timedelta(minutes=59)


def kinds(fake: FakeSlack) -> list[str]:
    return [p.payload["text"].split(":", 1)[0] for p in fake.posted]


async def test_a_real_drop_on_a_large_sample_notifies_once(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    until = traffic(engine, 0, 200, refusals=40)  # pass rate 80%, CI about 74-85%
    await evaluate_recent(job(), until=until)
    assert kinds(fake_slack) == ["Quality breach", "Assay run summary"]
    breach = fake_slack.posted[0].payload
    assert breach["channel"] == "#llm-quality"
    assert "refusal* pass_rate 80.0% (95% CI" in breach["blocks"][1]["text"]["text"]
    assert REFUSAL[:20] in str(breach["blocks"])  # a failing example is shown

    until = traffic(engine, 1, 200, refusals=40)  # still bad, within the 6 h cooldown
    await evaluate_recent(job(), until=until)
    assert kinds(fake_slack)[2:] == ["Assay run summary"]
    summary = fake_slack.posted[-1].payload
    assert (
        "Open breaches" in str(summary["blocks"])
        and "(+0.0 pp, not significant)" in summary["text"]
    )


async def test_the_same_drop_on_ten_samples_is_noise_unless_raw(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    until = traffic(engine, 0, 10, refusals=2)  # 80% of 10: Wilson 95% CI reaches 94%
    await evaluate_recent(job(min_samples=5), until=until)
    assert kinds(fake_slack) == ["Assay run summary"]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM assay.watermarks"))
        conn.execute(sa.text("DELETE FROM assay.scores"))
    raw = {"evaluator": "refusal", "metric": "pass_rate", "op": "<", "value": 0.9, "mode": "raw"}
    await evaluate_recent(job(raw, min_samples=5), until=until)
    assert kinds(fake_slack)[1:] == ["Quality breach", "Assay run summary"]


async def test_cooldown_reminder_then_one_recovery(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    quick = job(cooldown="0s", summary="never")
    await evaluate_recent(quick, until=traffic(engine, 0, 200, refusals=60))
    await evaluate_recent(quick, until=traffic(engine, 1, 200, refusals=60))
    assert kinds(fake_slack) == ["Quality breach", "Still breaching after 0 min"]
    await evaluate_recent(quick, until=traffic(engine, 2, 200, refusals=0))
    await evaluate_recent(quick, until=traffic(engine, 3, 200, refusals=0))
    assert kinds(fake_slack)[2:] == ["Recovered after 0 min"]  # once, not every healthy run
    with engine.connect() as conn:
        state = conn.execute(sa.text("SELECT status, resolved_at FROM assay.alerts")).one()
    assert state.status == "resolved" and state.resolved_at is not None


async def test_segments_are_alerted_separately(engine: sa.Engine, fake_slack: FakeSlack) -> None:
    traffic(engine, 0, 150, refusals=0, model="gpt-4o")
    until = traffic(engine, 0, 150, refusals=75, model="cheap-model")
    by_model = {"evaluator": "refusal", "metric": "pass_rate", "op": "<", "value": 0.9,
                "by": "model"}  # fmt: skip
    await evaluate_recent(job(by_model, summary="never"), until=until)
    [breach] = fake_slack.posted
    assert "[model=cheap-model]" in breach.payload["text"]


async def test_a_judge_outage_is_reported_as_could_not_measure_not_a_breach(
    engine: sa.Engine, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(status=503)))
    until = traffic(engine, 0, 60, refusals=0)
    outage = parse_job(
        {
            "deployment": "bot",
            "source": {"initial_lookback": "3d"},
            "evaluators": [
                {"name": "answer_relevance", "model": "openai/judge", "api_base": fake_llm.api_base}
            ],
            "limits": {"default": {"retries": 0, "concurrency": 1},
                       "breaker": {"window": 5, "error_rate": 0.5}},
            "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1,
                                                   "output_usd_per_mtok": 2}}},
            "alerts": {"rules": [{"evaluator": "answer_relevance", "value": 0.9}]},
        }
    )  # fmt: skip
    await evaluate_recent(outage, until=until)
    assert kinds(fake_slack) == ["Could not measure bot", "Assay run summary"]
    health = fake_slack.posted[0].payload["text"]
    assert "circuit open for openai/judge" in health and "55 items skipped" in health
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assay.alerts")).scalar_one() == 0


async def test_slack_down_for_two_runs_then_everything_arrives_once_in_order(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    fake_slack.down = True
    for hour in (0, 1):
        summary = await evaluate_recent(job(), until=traffic(engine, hour, 100, refusals=30))
        assert summary.status == "completed"  # Slack never fails the run
    assert fake_slack.posted == [] and fake_slack.attempts > 0
    with engine.connect() as conn:
        queued = (
            conn.execute(
                sa.text("SELECT kind FROM assay.outbox WHERE status = 'pending' ORDER BY seq")
            )
            .scalars()
            .all()
        )
    assert queued == ["breach", "summary", "summary"]
    fake_slack.down = False
    fake_slack.fail_next("ratelimited")  # slack-sdk's handler waits Retry-After and retries
    await evaluate_recent(job(), until=traffic(engine, 2, 100, refusals=30))
    assert kinds(fake_slack) == ["Quality breach"] + ["Assay run summary"] * 3
    assert len({p.payload["text"] for p in fake_slack.posted}) == 4  # each exactly once
    with engine.connect() as conn:
        pending = conn.execute(sa.text("SELECT count(*) FROM assay.outbox WHERE status <> 'sent'"))
        assert pending.scalar_one() == 0


async def test_channel_not_found_keeps_the_message_pending(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next("channel_not_found")
    await evaluate_recent(job(summary="always"), until=traffic(engine, 0, 20, refusals=0))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, last_error FROM assay.outbox")).one()
    assert row.status == "pending" and "channel_not_found" in row.last_error


async def test_no_secret_or_pii_reaches_slack(engine: sa.Engine, fake_slack: FakeSlack) -> None:
    leaky = "Contact jane.doe@example.com, key sk-proj-abcdefghijklmnopqrstuvwx1234"
    until = traffic(engine, 0, 100, refusals=40, prompt=leaky)
    await evaluate_recent(job(), until=until)
    everything = str([p.payload for p in fake_slack.posted]) + str(
        [p.headers.get("Authorization", "") for p in fake_slack.posted][:0]
    )
    assert fake_slack.posted and "prompt*" in everything
    assert "jane.doe@example.com" not in everything
    assert "sk-proj-abcdefghijklmnopqrstuvwx1234" not in everything
    assert "xoxb-test-token-never-posted" not in everything


async def test_a_broken_data_contract_alerts(engine: sa.Engine, fake_slack: FakeSlack) -> None:
    insert_logs(
        engine, [log(f"x{i}", START + timedelta(minutes=i), prompt=None) for i in range(30)]
    )
    with pytest.raises(DataContractBroken):
        await evaluate_recent(job(), until=START + timedelta(hours=1))
    [message] = fake_slack.posted
    assert message.payload["text"].startswith("Data contract broken: bot")
    assert "expect_column_values_to_not_be_null(prompt)" in message.payload["text"]


async def test_webhook_delivery(
    engine: sa.Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.settings import get_settings

    monkeypatch.delenv("ASSAY_SLACK_BOT_TOKEN")
    monkeypatch.setenv("ASSAY_SLACK_WEBHOOK_URL", fake_slack.webhook_url)
    get_settings.cache_clear()
    await evaluate_recent(job(), until=traffic(engine, 0, 20, refusals=0))
    assert [p.kind for p in fake_slack.posted] == ["webhook"]
    assert fake_slack.posted[0].payload["blocks"][0]["type"] == "header"


def test_block_kit_limits_hold_with_huge_inputs() -> None:
    from tasks.alerts.slack_messages import EvaluatorLine, summary_message

    lines = [
        EvaluatorLine(evaluator=f"rubric:check-{i}-" + "x" * 200, ok=10, pass_rate=0.5,
                      previous=0.6, errors=1, skipped=2, cost_usd=0.01)
        for i in range(400)
    ]  # fmt: skip
    run = {"window_start": START, "window_end": START, "pulled": 10**9, "quarantined": 5,
           "scored": 10**9}  # fmt: skip
    message = summary_message("bot", run, lines, ["breach " + "y" * 5000] * 80, ["h"] * 500, None)
    assert len(message.blocks) <= 50
    for block in message.blocks:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= 3000
    assert len(message.text) <= 3000


async def test_digest_mode_posts_one_daily_summary_instead_of_one_per_run(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    from flows.digest import digest

    daily = job(summary="digest")
    for hour in (0, 1, 2):
        await evaluate_recent(daily, until=traffic(engine, hour, 50, refusals=0))
    assert fake_slack.posted == []  # healthy runs, and summaries wait for the digest
    text = await digest(daily)
    assert text is not None and text.startswith("Assay daily digest: bot (3 runs)")
    [posted] = fake_slack.posted
    assert "refusal pass 100.0%" in posted.payload["text"]
    assert "150 pulled" in posted.payload["text"].replace(",", "")
