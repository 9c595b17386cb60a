"""Every row accounted for: reused ids, missing ids and timestamps, logs that arrive behind the
watermark, and logs that differ only in what a judge's template reads."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import parse_job
from tasks.demo.seed import SUPPORT_COLUMNS, copy_rows
from tests.conftest import BLANK_LOG, insert_logs, log
from tests.fakes.llm import FakeLLM, Reply, verdict

pytestmark = pytest.mark.usefixtures("prefect_api")
BASE = (datetime.now(UTC) - timedelta(hours=8)).replace(microsecond=0)


def loose_table(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    """A warehouse table like the reference one, without its key and NOT NULLs (as many are)."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA acct"))
        conn.execute(sa.text("CREATE TABLE acct.logs (LIKE assay.llm_logs)"))
        conn.execute(
            sa.text(
                "ALTER TABLE acct.logs ALTER COLUMN id DROP NOT NULL, ALTER COLUMN ts DROP NOT NULL"
            )
        )
        copy_rows(conn, "acct.logs", SUPPORT_COLUMNS, ({**BLANK_LOG, **r} for r in rows))


def job(**extra: Any) -> Any:
    return parse_job(
        {
            "deployment": "acct",
            "source": {"table": "acct.logs", "initial_lookback": "1d", "page_size": 10},
            "evaluators": [{"name": "refusal"}],
            **extra,
        }
    )


def quarantine(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.text("SELECT log_id, reasons::text FROM assay.quarantine")).all()
        )


async def test_reused_ids_and_missing_ids_or_times_are_each_quarantined(engine: sa.Engine) -> None:
    rows = [log(f"a{i:02d}", BASE + timedelta(minutes=i)) for i in range(25)]
    rows.append(log("a03", BASE + timedelta(minutes=40), prompt="another log under a reused id"))
    rows += [log(None, BASE + timedelta(minutes=2), prompt="first without id"),  # type: ignore[arg-type]
             log(None, BASE + timedelta(minutes=3), prompt="second without id")]  # type: ignore[arg-type]  # fmt: skip
    rows += [log("undated-1", None), log("undated-2", None)]  # type: ignore[arg-type]
    loose_table(engine, rows)
    until = BASE + timedelta(hours=1)

    summary = await evaluate_recent(job(), until=until)

    found = quarantine(engine)
    assert summary.status == "completed"
    assert "duplicate id" in found["a03"] and "already scored" in found["a03"]
    assert sum(1 for key in found if key.startswith("(no id)")) == 2  # two entries, not one
    assert "ts: NULL" in found["undated-1"] and "ts: NULL" in found["undated-2"]
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT count(*) FROM assay.scores")).scalar_one()
        a03 = conn.execute(
            sa.text("SELECT log_ts FROM assay.scores WHERE log_id = 'a03'")
        ).scalar_one()
    assert scored == 25 and a03 == BASE + timedelta(minutes=3)  # the first a03 keeps its score
    assert summary.quarantined == 5

    again = await evaluate_recent(job(), until=until)
    assert again.quarantined == 0  # undated logs already quarantined are not counted again


async def test_logs_arriving_behind_the_watermark_are_counted_with_the_remedy(
    engine: sa.Engine,
) -> None:
    insert_logs(engine, [log(f"b{i:02d}", BASE + timedelta(minutes=i)) for i in range(20)])
    plain = parse_job({"deployment": "late", "source": {"initial_lookback": "1d"},
                       "evaluators": [{"name": "refusal"}]})  # fmt: skip
    await evaluate_recent(plain, until=BASE + timedelta(hours=1))
    # Three logs of that first window show up only now (a slow log shipper).
    insert_logs(
        engine, [log(f"late-{i}", BASE + timedelta(minutes=5, seconds=10 + i)) for i in range(3)]
    )

    second = await evaluate_recent(plain, until=BASE + timedelta(hours=2))

    late = second.details["late"]
    assert late["count"] == 3
    assert late["remedy"].startswith("assay backfill late --start ")
    with engine.connect() as conn:
        unscored = conn.execute(
            sa.text("SELECT count(*) FROM assay.scores WHERE log_id LIKE 'late-%'")
        ).scalar_one()
    assert unscored == 0  # counted and reported, not silently scored or lost


async def test_logs_differing_only_in_their_reference_never_share_a_verdict(
    engine: sa.Engine, fake_llm: FakeLLM
) -> None:
    def by_reference(_n: int, body: dict[str, Any]) -> Reply:
        text = json.dumps(body["messages"])
        return Reply(content=verdict(0.1, False, "contradicts 30") if "30 days" in text
                     else verdict(0.9, True, "matches 14"))  # fmt: skip

    fake_llm.script("judge", by_reference)
    same = {"prompt": "How long do refunds take?", "response": "Refunds take 14 days."}
    insert_logs(
        engine,
        [log("ref-14", BASE, metadata=json.dumps({"reference": "Refunds take 14 days."}), **same),
         log("ref-30", BASE + timedelta(minutes=1),
             metadata=json.dumps({"reference": "Refunds take 30 days."}), **same)],
    )  # fmt: skip
    judged = parse_job(
        {
            "deployment": "refs",
            "source": {"initial_lookback": "1d"},
            "evaluators": [{"name": "correctness", "model": "openai/judge",
                            "api_base": fake_llm.api_base}],
            "sampling": {"dedupe": True},
            "budget": {"prices": {"openai/judge": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}},
        }
    )  # fmt: skip

    await evaluate_recent(judged, until=BASE + timedelta(hours=1))

    assert len(fake_llm.requests) == 2  # the same prompt and response, but two references
    with engine.connect() as conn:
        reasons = dict(conn.execute(sa.text("SELECT log_id, reason FROM assay.scores")).all())
    assert reasons["ref-14"] != reasons["ref-30"]
