"""Secrets stay home and Slack text is inert: a provider key echoed in an error body reaches no
table, message or log line; a log cannot page the channel or disguise a link."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
PLANTED = "sk-planted-" + "Q7x" * 12
PRICES = {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}
REFUSAL = "I cannot help with that request."


def job(api_base: str, **judge: object) -> object:
    return parse_job(
        {
            "deployment": "leaky",
            "source": {"initial_lookback": "1d"},
            "evaluators": [
                {"name": "refusal"},
                {"name": "toxicity", "model": "openai/judge", "api_base": api_base, **judge},
            ],
            "budget": {"prices": PRICES, "max_usd_per_day": 5},
            "limits": {"default": {"retries": 0}},
            "alerts": {
                "min_samples": 5,
                "rules": [{"evaluator": "refusal", "metric": "pass_rate", "op": "<", "value": 0.9,
                           "mode": "raw"}],
            },
        }
    )  # fmt: skip


def everything_stored(engine: sa.Engine) -> str:
    """Every row of every table in schema assay, as text."""
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'assay'")
        ).scalars()
        return "\n".join(
            str(conn.execute(sa.text(f"SELECT t::text FROM assay.{name} t")).scalars().all())
            for name in tables
        )


async def test_a_key_echoed_by_the_provider_is_stored_and_posted_nowhere(
    engine: sa.Engine,
    fake_llm: FakeLLM,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {PLANTED}. Bearer {PLANTED}"}}
    )
    fake_llm.script("judge", always(Reply(status=401, body=body)))
    insert_logs(
        engine,
        [log(f"l{i:02d}", BASE + timedelta(minutes=i), response=REFUSAL) for i in range(20)],
    )
    caplog.set_level(logging.DEBUG)

    summary = await evaluate_recent(job(fake_llm.api_base), until=BASE + timedelta(hours=1))

    assert summary.status == "completed"
    # The key really was sent to this (loopback, trusted) provider and echoed back ...
    assert fake_llm.requests and PLANTED in (fake_llm.requests[0].authorization or "")
    stored = everything_stored(engine)
    assert "Incorrect API key provided" in stored  # ... and the error text was kept,
    assert PLANTED not in stored  # without the key, in scores, runs, outbox, alerts.
    posted = json.dumps([p.payload for p in fake_slack.posted])
    assert fake_slack.posted and PLANTED not in posted
    assert PLANTED not in caplog.text


async def test_an_untrusted_api_base_gets_no_default_key(
    engine: sa.Engine, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    monkeypatch.setenv("ASSAY_TRUSTED_API_HOSTS", "api.openai.com")  # not this loopback server
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    insert_logs(engine, [log(f"u{i}", BASE + timedelta(minutes=i)) for i in range(3)])

    await evaluate_recent(job(fake_llm.api_base), until=BASE + timedelta(hours=1))

    assert fake_llm.requests
    assert all(PLANTED not in (seen.authorization or "") for seen in fake_llm.requests)


async def test_a_key_named_explicitly_goes_only_to_a_host_the_operator_trusts(
    engine: sa.Engine, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.errors import ConfigError

    monkeypatch.setenv("ASSAY_JUDGE_KEY_SELF_HOSTED", PLANTED)
    monkeypatch.setenv("ASSAY_TRUSTED_API_HOSTS", "api.openai.com")
    fake_llm.script("judge", always(Reply(content=verdict(0.9, True, "fine"))))
    insert_logs(engine, [log(f"e{i}", BASE + timedelta(minutes=i)) for i in range(3)])

    # Naming a key no longer sends it to a host the operator has not trusted (issue 24).
    with pytest.raises(ConfigError, match="ASSAY_TRUSTED_API_HOSTS"):
        job(fake_llm.api_base, api_key_env="ASSAY_JUDGE_KEY_SELF_HOSTED")
    assert fake_llm.requests == []

    monkeypatch.setenv("ASSAY_TRUSTED_API_HOSTS", "api.openai.com,loopback")
    await evaluate_recent(
        job(fake_llm.api_base, api_key_env="ASSAY_JUDGE_KEY_SELF_HOSTED"),
        until=BASE + timedelta(hours=1),
    )

    assert fake_llm.requests
    assert all(PLANTED in (seen.authorization or "") for seen in fake_llm.requests)


async def test_mentions_and_disguised_links_in_logs_and_verdicts_arrive_inert(
    engine: sa.Engine, fake_llm: FakeLLM, fake_slack: FakeSlack
) -> None:
    hostile = f"{REFUSAL} <!channel> <!here> <@U024BE7LH> <https://evil.example|your invoice>"
    fake_llm.script(
        "judge",
        always(Reply(content=verdict(0.1, False, "see <!everyone> & <https://x.example|docs>"))),
    )
    insert_logs(
        engine,
        [log(f"s{i:02d}", BASE + timedelta(minutes=i), response=hostile, customer_id="<!channel>")
         for i in range(20)],
    )  # fmt: skip

    await evaluate_recent(job(fake_llm.api_base), until=BASE + timedelta(hours=1))

    assert fake_slack.posted
    posted = json.dumps([p.payload for p in fake_slack.posted])
    assert "&lt;!channel&gt;" in posted  # the example is shown, escaped
    for live in ("<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<https://evil.example"):
        assert live not in posted, live
