"""The data contract end to end on real Postgres and Prefect: a catalogue of broken logs lands in
quarantine with the right reasons and nothing else is lost; a broken batch stops the run before
any judge is paid; a fixed source is re-admitted and scored once."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from flows.cli import app
from flows.evaluate import evaluate_recent
from flows.replay import replay_quarantine
from tasks.config import EvalJob, parse_job
from tasks.errors import ConfigError, DataContractBroken
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
UNTIL = BASE + timedelta(hours=3)

BAD_TABLE = """
CREATE TABLE public.bad_logs (
    id text, ts timestamptz, prompt bytea, response text, status text,
    input_tokens integer, output_tokens text, latency_text text, feedback text
)
"""


def catalogue_job(**quality: Any) -> EvalJob:
    return parse_job(
        {
            "deployment": "messy-app",
            "source": {
                "table": "public.bad_logs",
                "initial_lookback": "2d",
                "page_size": 100,
                "columns": {
                    "context": None, "model": None, "provider": None, "prompt_slug": None,
                    "topic": None, "customer_id": None, "user_id": None, "session_id": None,
                    "environment": None, "cost_usd": None, "metadata": None,
                    "latency_ms": "latency_text",
                },
            },
            "evaluators": [{"name": "pii"}, {"name": "length", "params": {"min": 1}}],
            "quality": quality,
        }
    )  # fmt: skip


def quarantine(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT log_id, stage, expectations, reasons, run_id::text AS run_id "
                    "FROM assay.quarantine ORDER BY log_id")
        )  # fmt: skip
        return {r.log_id: r for r in rows}


def scored_ids(engine: sa.Engine, evaluator: str = "pii") -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT log_id FROM assay.scores WHERE evaluator = :e ORDER BY log_id"),
            {"e": evaluator},
        )
        return [r.log_id for r in rows]


def add(engine: sa.Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


async def test_every_kind_of_broken_log_is_quarantined_with_its_reason(
    engine: sa.Engine,
) -> None:
    add(engine, BAD_TABLE)
    insert = (
        "INSERT INTO public.bad_logs VALUES (:id, :ts, convert_to(:prompt, 'UTF8'), :response, "
        ":status, :input_tokens, :output_tokens, :latency_text, :feedback)"
    )
    good = {"prompt": "where is my order?", "response": "It ships today.", "status": "ok",
            "input_tokens": 10, "output_tokens": None, "latency_text": None, "feedback": None}  # fmt: skip
    for i in range(60):
        add(engine, insert, **good, id=f"g{i:02d}", ts=BASE + timedelta(minutes=i))
    t = BASE + timedelta(minutes=90)
    broken = {
        "null-response": {"response": None},
        "empty-response": {"response": ""},
        "neg-tokens": {"input_tokens": -5},
        "str-tokens": {"output_tokens": "42"},
        "wrong-type": {"latency_text": "fast"},
        "bad-status": {"status": "weird"},
        "bad-feedback": {"feedback": "meh"},
    }
    for log_id, change in broken.items():
        add(engine, insert, **{**good, **change}, id=log_id, ts=t)
    add(engine, "INSERT INTO public.bad_logs (id, ts, prompt, response, status) VALUES "
        "('non-utf8', :ts, '\\xfffe41'::bytea, 'ok answer', 'ok')", ts=t)  # fmt: skip
    add(engine, "INSERT INTO public.bad_logs (id, ts, prompt, response, status) VALUES "
        "('huge-prompt', :ts, convert_to(repeat('x', 5000000), 'UTF8'), 'ok answer', 'ok')",
        ts=t)  # fmt: skip
    add(engine, insert, **good, id="g05", ts=t)  # the same id logged twice
    add(engine, insert, **good, id="future", ts=datetime.now(UTC) + timedelta(days=2))

    summary = await evaluate_recent(catalogue_job(), until=UNTIL)

    assert summary.status == "completed"
    q = quarantine(engine)
    expected = {
        "null-response": "expect_column_values_to_not_be_null(response)",
        "empty-response": "expect_column_value_lengths_to_be_between(response)",
        "neg-tokens": "expect_column_values_to_be_between(input_tokens)",
        "str-tokens": "expect_column_values_to_be_in_type_list(output_tokens)",
        "wrong-type": "expect_column_values_to_be_in_type_list(latency_ms)",
        "bad-status": "expect_column_values_to_be_in_set(status)",
        "bad-feedback": "expect_column_values_to_be_in_set(feedback)",
        "non-utf8": "expect_column_values_to_be_in_set(prompt)",
        "huge-prompt": "expect_column_value_lengths_to_be_between(prompt)",
        "g05": "expect_column_values_to_be_unique(id)",
        "future": "expect_column_values_to_be_between(ts)",
    }
    assert set(q) == set(expected)
    for log_id, expectation in expected.items():
        assert q[log_id].stage == "validate"
        assert expectation in q[log_id].expectations, (log_id, q[log_id].reasons)
    assert "got 'fast'" in q["wrong-type"].reasons[0]
    assert "got '42'" in q["str-tokens"].reasons[0]
    assert "got '5,000,000 characters'" in q["huge-prompt"].reasons[0]
    assert "got 'bytes'" in q["non-utf8"].reasons[0]  # the type, never the content
    # Nothing else is lost: all 60 good logs (g05 once) are scored, no bad one is.
    assert scored_ids(engine) == [f"g{i:02d}" for i in range(60)]
    contract = summary.details["contract"]
    assert contract["invalid_rows"] == 10 and contract["rows"] == 70
    assert contract["unexpected"]["expect_column_values_to_be_unique(id)"] == 1
    assert summary.quarantined == 11  # ten in the window plus the future-stamped one


async def test_a_missing_mapped_column_fails_the_run_naming_it(engine: sa.Engine) -> None:
    add(engine, BAD_TABLE)
    job = catalogue_job()
    job.source.columns["customer_id"] = "tenant"
    with pytest.raises(ConfigError, match="customer_id -> tenant"):
        await evaluate_recent(job, until=UNTIL)
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT status, error FROM assay.eval_runs")).one()
    assert run.status == "failed" and "tenant" in run.error


async def test_malformed_payload_json_is_quarantined(engine: sa.Engine) -> None:
    add(
        engine,
        "CREATE TABLE public.raw_chat (id text, ts timestamptz, request text, response text)",
    )
    good_request = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    good_response = json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}
    )
    for i in range(30):
        add(engine, "INSERT INTO public.raw_chat VALUES (:id, :ts, :req, :resp)",
            id=f"c{i}", ts=BASE + timedelta(minutes=i), req=good_request, resp=good_response)  # fmt: skip
    add(engine, "INSERT INTO public.raw_chat VALUES ('broken', :ts, :req, :resp)",
        ts=BASE + timedelta(minutes=40), req='{"messages": [', resp=good_response)  # fmt: skip
    job = parse_job(
        {"deployment": "chat-app", "source": {"table": "public.raw_chat", "format": "openai_chat",
         "initial_lookback": "2d"}, "evaluators": [{"name": "pii"}]}
    )  # fmt: skip
    await evaluate_recent(job, until=UNTIL)
    q = quarantine(engine)
    assert set(q) == {"broken"}
    assert "expect_column_values_to_be_json_parseable(payload_request)" in q["broken"].expectations
    assert len(scored_ids(engine)) == 30


async def test_a_broken_batch_stops_the_run_before_any_judge_is_paid_then_recovers(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    insert_logs(
        engine,
        [log(f"ok{i:02d}", BASE + timedelta(minutes=i)) for i in range(10)]
        + [
            log(f"np{i:02d}", BASE + timedelta(minutes=i, seconds=30), prompt=None)
            for i in range(10)
        ],
    )
    job = parse_job(
        {
            "deployment": "broken-app",
            "source": {"initial_lookback": "2d"},
            "evaluators": [
                {"name": "pii"},
                {
                    "name": "answer_relevance",
                    "model": "openai/judge",
                    "api_base": fake_llm.api_base,
                },
            ],
            "budget": {
                "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}
            },
        }
    )
    with pytest.raises(DataContractBroken, match="10 of 20 logs"):
        await evaluate_recent(job, until=UNTIL)
    assert fake_llm.requests == []  # no budget spent on broken data
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assay.watermarks")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM assay.scores")).scalar_one() == 0
        run = conn.execute(sa.text("SELECT status, error, details FROM assay.eval_runs")).one()
    assert run.status == "failed"
    assert "expect_column_values_to_not_be_null(prompt) x10" in run.error
    assert run.details["contract"]["invalid_rows"] == 10
    assert len(quarantine(engine)) == 10  # visible, with the failed run's id

    # The logging bug is fixed at the source; the next run re-reads the window and succeeds.
    add(engine, "UPDATE assay.llm_logs SET prompt = 'fixed prompt' WHERE prompt IS NULL")
    summary = await evaluate_recent(job, until=UNTIL)
    assert summary.status == "completed" and summary.pulled == 20
    assert quarantine(engine) == {}  # re-admitted
    assert len(scored_ids(engine)) == 20
    # The ten fixed logs now read the same: judged once, the other nine copy that verdict.
    assert len(fake_llm.requests) == 11


async def test_replay_readmits_fixed_logs_and_scores_them_once(engine: sa.Engine) -> None:
    insert_logs(
        engine,
        [log(f"ok{i:02d}", BASE + timedelta(minutes=i)) for i in range(30)]
        + [log("bad1", BASE, status="weird"), log("bad2", BASE, response=None)],
    )
    job = parse_job(
        {"deployment": "replay-app", "source": {"initial_lookback": "2d"},
         "evaluators": [{"name": "pii"}]}
    )  # fmt: skip
    first = await evaluate_recent(job, until=UNTIL)
    assert set(quarantine(engine)) == {"bad1", "bad2"}
    runner = CliRunner()
    listed = runner.invoke(app, ["quarantine", "replay-app", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert {r["log_id"] for r in rows} == {"bad1", "bad2"}
    assert all(r["run_id"] == first.run_id for r in rows)

    add(engine, "UPDATE assay.llm_logs SET status = 'ok' WHERE id = 'bad1'")  # one fixed
    replay = await replay_quarantine(job)
    assert replay.details["replay"] == {
        "requested": 2, "readmitted": 1, "still_invalid": 1, "missing_from_source": 0,
        "scores_written": 1,
    }  # fmt: skip
    assert set(quarantine(engine)) == {"bad2"}
    assert scored_ids(engine).count("bad1") == 1
    again = await replay_quarantine(job)
    assert again.details["replay"]["scores_written"] == 0
    assert scored_ids(engine).count("bad1") == 1


def test_unknown_extra_expectation_is_a_config_error() -> None:
    from tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="expect_column_values_to_be_purple"):
        parse_job(
            {"deployment": "x", "quality": {"expectations": [
                {"type": "expect_column_values_to_be_purple", "kwargs": {"column": "model"}}]}}
        )  # fmt: skip
    with pytest.raises(ConfigError, match="value_set"):
        parse_job(
            {"deployment": "x", "quality": {"expectations": [
                {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "environment"}}]}}
        )  # fmt: skip


async def test_per_deployment_extra_expectations_and_allowed_models(engine: sa.Engine) -> None:
    insert_logs(
        engine,
        [log(f"p{i:02d}", BASE + timedelta(minutes=i), environment="production", model="gpt-4o")
         for i in range(30)]
        + [log("staging-leak", BASE, environment="staging", model="gpt-4o"),
           log("rogue-model", BASE, environment="production", model="llama-rogue")],
    )  # fmt: skip
    job = parse_job(
        {
            "deployment": "strict-app",
            "source": {"initial_lookback": "2d"},
            "evaluators": [{"name": "pii"}],
            "quality": {
                "allowed_models": ["gpt-4o", "gpt-4o-mini"],
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "environment", "value_set": ["production"]},
                        "description": "only production traffic is evaluated here",
                    }
                ],
            },
        }
    )
    await evaluate_recent(job, until=UNTIL)
    q = quarantine(engine)
    assert set(q) == {"staging-leak", "rogue-model"}
    assert "only production traffic is evaluated here" in q["staging-leak"].reasons[0]
    assert q["rogue-model"].expectations == ["expect_column_values_to_be_in_set(model)"]
