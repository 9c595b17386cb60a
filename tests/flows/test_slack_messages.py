"""Slack messages an on-call engineer acts on, end to end through the fake Slack server: one
message per evaluator breach with its segments inside, a few distinct examples, the log
pipeline's own alerts (no traffic, broken contract), honest deltas, and an outbox that keeps
what a worker produced before Slack was configured."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import EvalJob, parse_job
from tests.cli import assay
from tests.conftest import insert_logs, log
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.usefixtures("prefect_api")
START = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
SLUGS = ["billing", "login", "orders", "refunds", "shipping"]


def pii_job(**alerts: Any) -> EvalJob:
    return parse_job({
        "deployment": "bot",
        "source": {"initial_lookback": "3d"},
        "evaluators": [{"name": "pii"}, {"name": "refusal"}],
        "quality": {"expect_traffic": True},
        "alerts": {"min_samples": 20, "rules": [
            {"evaluator": "pii", "metric": "pass_rate", "op": "<", "value": 0.99,
             "by": "prompt_slug"},
            {"evaluator": "refusal", "metric": "pass_rate", "op": "<", "value": 0.5},
        ], **alerts},
    })  # fmt: skip


def leaky_traffic(engine: sa.Engine, hour: int) -> datetime:
    """Every slug leaks emails in a third of its answers; most leaks repeat one answer."""
    base = START + timedelta(hours=hour)
    rows = []
    for s, slug in enumerate(SLUGS):
        for i in range(60):
            leak = i % 3 == 0
            response = (f"Sure, write to agent{i % 2}@example.com about {slug}." if leak
                        else "Here is how to do it.")  # fmt: skip
            rows.append(log(f"{hour}-{slug}-{i:03d}", base + timedelta(seconds=s * 60 + i),
                            prompt_slug=slug, response=response))  # fmt: skip
    insert_logs(engine, rows)
    return base + timedelta(minutes=59)


async def test_one_message_per_breached_evaluator_with_every_segment_inside(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    until = leaky_traffic(engine, 0)
    summary = await evaluate_recent(pii_job(), until=until)
    texts = [p.payload["text"] for p in fake_slack.posted]
    breaches = [t for t in texts if t.startswith("Quality breach")]
    assert len(breaches) == 1, texts  # not one per prompt slug
    [breach] = [p.payload for p in fake_slack.posted if p.payload["text"].startswith("Quality")]
    body = str(breach["blocks"])
    for slug in SLUGS:
        assert f"prompt_slug={slug}" in body
    assert "5 segments by prompt_slug" in body
    examples = [b for b in breach["blocks"] if "*response*" in str(b)]
    assert 1 <= len(examples) <= 3
    responses = [str(b).split("*response*")[1].split("\\n")[0] for b in examples]
    assert len(set(responses)) == len(responses)  # distinct, not the same leak three times
    assert "example.com" not in body  # PII masked in the examples themselves
    assert summary.status == "completed"


async def test_a_dead_pipeline_pages_someone_then_recovers(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    job = pii_job(cooldown="1h", summary="never")
    quiet_until = START + timedelta(hours=1)
    await evaluate_recent(job, until=quiet_until)
    assert [p.payload["text"].split(":")[0] for p in fake_slack.posted] == ["No traffic"]
    assert "expect_traffic" in fake_slack.posted[0].payload["text"]

    await evaluate_recent(job, until=quiet_until + timedelta(minutes=1))  # within the cooldown
    assert len(fake_slack.posted) == 1
    with engine.begin() as conn:  # two hours later, as far as the alert knows
        conn.execute(sa.text("UPDATE assay.alerts SET opened_at = opened_at - interval '2 hours',"
                             " last_notified_at = last_notified_at - interval '2 hours'"))  # fmt: skip
    await evaluate_recent(job, until=quiet_until + timedelta(minutes=2))
    assert fake_slack.posted[-1].payload["text"].startswith("No traffic, still, after")

    until = leaky_traffic(engine, 2)
    await evaluate_recent(job, until=until)
    texts = [p.payload["text"] for p in fake_slack.posted[2:]]
    assert any(t.startswith("Recovered after") and "no traffic" in t for t in texts), texts


async def test_summary_changes_carry_their_interval_and_breaches_their_opening_value(
    engine: sa.Engine, fake_slack: FakeSlack
) -> None:
    job = pii_job()
    await evaluate_recent(job, until=leaky_traffic(engine, 0))
    await evaluate_recent(job, until=leaky_traffic(engine, 1))
    summary = [p.payload["text"] for p in fake_slack.posted if "run summary" in p.payload["text"]]
    latest = summary[-1]
    assert "pii pass 66.7% (+0.0 pp, not significant) · n=300" in latest
    assert "when it opened" in latest  # the value the breach opened with, beside today's

    fake_slack.posted.clear()
    await evaluate_recent(job, until=START + timedelta(hours=2, minutes=59))  # no new logs
    [empty] = [p.payload["text"] for p in fake_slack.posted if "run summary" in p.payload["text"]]
    assert "still open (no new scores" in empty
    assert "prompt_slug=billing" not in empty  # not the whole list again


def test_messages_wait_in_the_outbox_until_slack_is_configured(
    engine: sa.Engine, assay_env: str, fake_slack_server: FakeSlack, tmp_path: Any
) -> None:
    fake_slack_server.reset()
    config = tmp_path / "bot.yaml"
    config.write_text(pii_job().model_dump_json())  # JSON is YAML
    leaky_traffic(engine, 0)
    ran = assay("run", "bot", "--config", str(config), db_url=assay_env)
    assert ran.returncode == 0, ran.stderr
    assert "queued in the outbox" in ran.stdout

    listed = assay("outbox", db_url=assay_env, columns=100)
    assert "Quality breach" in listed.stdout and "summary" in listed.stdout
    assert fake_slack_server.posted == []

    slack = {"ASSAY_SLACK_BOT_TOKEN": "xoxb-configured-later", "ASSAY_SLACK_CHANNEL": "#q",
             "ASSAY_SLACK_BASE_URL": fake_slack_server.api_base}  # fmt: skip
    sent = assay("outbox", "--send", db_url=assay_env, env=slack)
    assert sent.returncode == 0, sent.stderr
    texts = [p.payload["text"] for p in fake_slack_server.posted]
    assert any(t.startswith("Quality breach") for t in texts)
    assert all(p.payload["channel"] == "#q" for p in fake_slack_server.posted)
    assert "0 still pending" in sent.stdout
    again = assay("outbox", "--send", db_url=assay_env, env=slack)
    assert "sent 0" in again.stdout and len(fake_slack_server.posted) == len(texts)
