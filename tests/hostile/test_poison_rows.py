"""Poison rows: what Postgres, JSON or the encoder cannot store is quarantined per row, with the
reason; the good rows around it are scored; a rerun does nothing and pays nothing."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tests.fakes.llm import FakeLLM, Reply, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)


def chat(
    prompt: str, answer: str = "Here is how to reset your password.", model: str = "gpt-x"
) -> tuple[str, str]:
    request = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]})
    response = json.dumps(
        {"model": model, "choices": [{"message": {"role": "assistant", "content": answer}}]}
    )
    return request, response


def poison_table(engine: sa.Engine) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(20):
        request, response = chat(f"good question {i}")
        rows.append(
            {"id": f"good-{i:02d}", "request": request, "response": response, "cost": 0.001}
        )
    request, response = chat("q", "The judge answers with a NUL in its reason: nul-reason")
    rows.append({"id": "good-nul-reason", "request": request, "response": response, "cost": 0.001})
    request, response = chat("q", "The judge fails with a NUL in its error body: nul-error")
    rows.append({"id": "good-nul-error", "request": request, "response": response, "cost": 0.001})
    request, response = chat("cost is not a number")
    rows.append({"id": "bad-nan-cost", "request": request, "response": response, "cost": "NaN"})
    deep = "[" * 3000 + "1" + "]" * 3000
    rows.append({"id": "bad-deep-json", "request": '{"messages": [], "x": ' + deep + "}",
                 "response": response, "cost": 0.001})  # fmt: skip
    request, response = chat("a NUL in the model, a segment field", model="gpt-nul")
    request, response = (
        request.replace("gpt-nul", "gpt\\u0000x"),
        response.replace("gpt-nul", "gpt\\u0000x"),
    )
    rows.append({"id": "bad-nul-segment", "request": request, "response": response, "cost": 0.001})
    request, response = chat("placeholder")
    request = request.replace("placeholder", "lone \\ud800 surrogate")
    rows.append({"id": "bad-surrogate", "request": request, "response": response, "cost": 0.001})
    request, response = chat("a very long id")
    rows.append({"id": "x" * 3000, "request": request, "response": response, "cost": 0.001})
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA poison"))
        conn.execute(
            sa.text(
                "CREATE TABLE poison.chat_logs (id text, ts timestamptz, request json, "
                "response json, cost_usd numeric, customer_id text)"
            )
        )
        for n, row in enumerate(rows):
            conn.execute(
                sa.text(
                    "INSERT INTO poison.chat_logs VALUES (:id, :ts, CAST(:request AS json), "
                    "CAST(:response AS json), CAST(:cost AS numeric), 'acme')"
                ),
                {**row, "ts": BASE + timedelta(minutes=n), "cost": str(row["cost"])},
            )


def judge_script(n: int, body: dict[str, Any]) -> Reply:
    text = json.dumps(body["messages"])
    if "nul-reason" in text:
        return Reply(content=verdict(0.2, False, "bad\u0000thing"))
    if "nul-error" in text:
        return Reply(status=500, body='{"error": {"message": "upstream \\u0000 broke"}}')
    return Reply(content=verdict(0.9, True, "fine"))


def poison_job(api_base: str) -> Any:
    return parse_job(
        {
            "deployment": "poison",
            "source": {
                "table": "poison.chat_logs",
                "format": "openai_chat",
                "columns": {"cost_usd": "cost_usd", "customer_id": "customer_id"},
                "initial_lookback": "1d",
                "page_size": 10,
            },
            "evaluators": [
                {"name": "refusal"},
                {"name": "toxicity", "model": "openai/judge", "api_base": api_base},
            ],
            "limits": {"default": {"retries": 0}},
            "budget": {
                "prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}
            },
            "quality": {"max_invalid_fraction": 0.5},
        }
    )


async def test_poison_rows_are_quarantined_and_never_block_the_rest(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    poison_table(engine)
    fake_llm.script("judge", judge_script)
    job = poison_job(fake_llm.api_base)
    until = BASE + timedelta(hours=1)

    summary = await evaluate_recent(job, until=until)

    assert summary.status == "completed", summary
    with engine.connect() as conn:
        quarantined = dict(
            conn.execute(sa.text("SELECT log_id, reasons::text FROM assay.quarantine")).all()
        )
        scored = conn.execute(
            sa.text("SELECT count(DISTINCT log_id) FROM assay.scores WHERE evaluator = 'refusal'")
        ).scalar_one()
        reasons = dict(
            conn.execute(
                sa.text("SELECT log_id, reason FROM assay.scores WHERE evaluator = 'toxicity'")
            ).all()
        )
        statuses = dict(
            conn.execute(
                sa.text("SELECT log_id, status FROM assay.scores WHERE evaluator = 'toxicity'")
            ).all()
        )
    assert (summary.pulled, summary.quarantined) == (27, 5), sorted(k[:20] for k in quarantined)
    assert scored == 22  # every good row, the two whose judge misbehaves included
    assert {"bad-nan-cost", "bad-deep-json", "bad-nul-segment", "bad-surrogate"} <= set(quarantined)
    [long_key] = [k for k in quarantined if k.startswith("xxxx")]
    assert len(long_key) < 200 and "sha256:" in long_key  # keyed by a digest, not the 3 KB id
    assert "NaN" in quarantined["bad-nan-cost"] or "nan" in quarantined["bad-nan-cost"]
    assert "nested" in quarantined["bad-deep-json"]
    assert "NUL" in quarantined["bad-nul-segment"]
    assert "surrogate" in quarantined["bad-surrogate"]
    # The judge's NUL is stored inertly, on an ok row; the 500's body is an error row.
    assert statuses["good-nul-reason"] == "ok" and "\x00" not in reasons["good-nul-reason"]
    assert statuses["good-nul-error"] == "error", (
        reasons["good-nul-error"],
        reasons["good-nul-reason"],
    )
    assert "\x00" not in (reasons["good-nul-error"] or "")
    paid = len(fake_llm.requests)

    again = await evaluate_recent(job, until=until)

    assert again.status == "completed" and again.pulled == 0 and again.scored == 0
    assert len(fake_llm.requests) == paid  # nothing judged (or paid for) twice


async def test_blank_responses_and_unknown_status_are_quarantined_not_scored(
    engine: sa.Engine,
) -> None:
    from tests.conftest import insert_logs, log

    rows = [log(f"ok-{i:02d}", BASE + timedelta(minutes=i)) for i in range(20)]
    rows += [
        log("blank-response", BASE, response="   \n\t "),
        log("null-status", BASE, status=None),
        log("no-id-a", BASE, prompt=None),
    ]
    insert_logs(engine, rows)
    job = parse_job({"deployment": "blanks", "source": {"initial_lookback": "1d"},
                     "evaluators": [{"name": "refusal"}]})  # fmt: skip

    summary = await evaluate_recent(job, until=BASE + timedelta(hours=1))

    with engine.connect() as conn:
        quarantined = dict(
            conn.execute(sa.text("SELECT log_id, reasons::text FROM assay.quarantine")).all()
        )
    assert summary.status == "completed" and summary.scored == 20
    assert "non-empty" in quarantined["blank-response"]
    assert "status: NULL" in quarantined["null-status"]
