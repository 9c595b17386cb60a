"""Judge replies cannot stall or swell a run: verdict parsing is linear in the reply, bodies are
read up to a cap, and a verdict that contradicts itself is an error row, never a score."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from evaluators.errors import VerdictUnparseable
from evaluators.judges.builtin import inconsistent
from evaluators.judges.verdict import parse_verdict
from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.conftest import insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, always, verdict

BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)


def test_a_runaway_json_mode_reply_parses_in_linear_time() -> None:
    # "```json" then whitespace is what JSON-mode models emit when they run away; the old fence
    # regex took ~19 s on 3k characters of it (roughly cubic).
    for size in (3_000, 1_000_000):
        reply = "```json" + " \n" * (size // 2)
        started = time.perf_counter()
        with pytest.raises(VerdictUnparseable):
            parse_verdict(reply)
        assert time.perf_counter() - started < 0.05
    fenced = "```json\n" + verdict(0.9, True) + "\n```"
    assert parse_verdict(fenced).score == 0.9


def test_duplicate_keys_are_found_in_one_pass() -> None:
    many = "{" + ",".join(f'"k{i}": {i}' for i in range(200_000)) + ', "k7": 1}'
    started = time.perf_counter()
    with pytest.raises(VerdictUnparseable, match="k7 appears more than once"):
        parse_verdict(many)
    assert time.perf_counter() - started < 2.0  # quadratic was minutes at this size


def test_the_inconsistency_rule() -> None:
    assert inconsistent(0.99, False, 0.5) and inconsistent(0.05, True, 0.5)
    assert not inconsistent(0.55, True, 0.6)  # between the midpoint and the threshold: honest
    assert not inconsistent(0.9, True, 0.5) and not inconsistent(0.2, False, 0.5)


def job(fake: FakeLLM) -> object:
    return parse_job({
        "deployment": "replies",
        "source": {"initial_lookback": "1d"},
        "evaluators": [{"name": "toxicity", "model": "openai/judge", "api_base": fake.api_base}],
        "limits": {"default": {"retries": 1, "backoff_s": 0.05, "concurrency": 4}},
        "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}},
    })  # fmt: skip


def stored(engine: sa.Engine) -> list[tuple[str, str | None, bool | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT status, reason, passed FROM assay.scores ORDER BY log_id"))]  # fmt: skip


@pytest.mark.usefixtures("prefect_api")
async def test_an_oversized_reply_is_an_error_row_read_no_further_than_the_cap(
    engine: sa.Engine, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSAY_JUDGE_MAX_RESPONSE_BYTES", str(256 * 1024))
    huge = json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": verdict(0.9, True, "x" * (3 * 1024 * 1024))}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10}})  # fmt: skip
    fake_llm.script("judge", always(Reply(body=huge)))
    insert_logs(engine, [log(f"h{i}", BASE + timedelta(minutes=i)) for i in range(3)])

    summary = await evaluate_recent(job(fake_llm), until=BASE + timedelta(hours=1))

    assert summary.status == "completed"
    rows = stored(engine)
    assert len(rows) == 3 and all(s == "error" and "byte cap" in (r or "") for s, r, _ in rows)
    assert len(fake_llm.requests_for("judge")) == 3  # not retried: it would come back as large


@pytest.mark.usefixtures("prefect_api")
async def test_a_verdict_that_contradicts_itself_is_an_error_not_a_score(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.script("judge", always(Reply(content=verdict(0.99, False, "looks fine"))))
    insert_logs(engine, [log(f"c{i}", BASE + timedelta(minutes=i)) for i in range(3)])

    await evaluate_recent(job(fake_llm), until=BASE + timedelta(hours=1))

    rows = stored(engine)
    assert len(rows) == 3
    assert all(
        s == "error" and p is None and "inconsistent verdict" in (r or "") for s, r, p in rows
    )
