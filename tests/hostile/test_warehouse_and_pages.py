"""Least privilege on the warehouse, and pages that commit whole or not at all."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from flows.evaluate import evaluate_recent
from tasks.config import SourceConfig, parse_job
from tasks.errors import SourceError, TransientError
from tasks.warehouse.source import fetch_page
from tests.conftest import insert_logs, log

BASE = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
UNTIL = BASE + timedelta(hours=1)


def slipped_past_the_config_check(query: str, **fields: object) -> SourceConfig:
    """A source whose query the static check would refuse: what the database itself stops."""
    source = SourceConfig(query="SELECT id, ts, prompt FROM assay.llm_logs", **fields)  # type: ignore[arg-type]
    source.query = query
    source.columns = {
        field: None for field in source.column_mapping() if field not in ("id", "ts", "prompt")
    }
    return source


def read(engine: sa.Engine, source: SourceConfig) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return fetch_page(conn, source, None, BASE - timedelta(days=1), UNTIL)


def test_warehouse_reads_are_read_only_even_for_a_query_that_writes(engine: sa.Engine) -> None:
    insert_logs(engine, [log("w1", BASE)])
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SEQUENCE public.victim_seq"))
    setval = slipped_past_the_config_check(
        "SELECT id, ts, prompt, setval('public.victim_seq', 999) AS n FROM assay.llm_logs"
    )
    with pytest.raises(SourceError, match="read-only transaction"):
        read(engine, setval)
    nextval = slipped_past_the_config_check(
        "SELECT id, ts, prompt FROM assay.llm_logs WHERE nextval('public.victim_seq') > 0"
    )
    with pytest.raises(SourceError, match="read-only transaction"):
        read(engine, nextval)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT last_value FROM public.victim_seq")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM assay.llm_logs")).scalar_one() == 1
    # The same connection reads normally afterwards.
    assert [r["id"] for r in read(engine, slipped_past_the_config_check(
        "SELECT id, ts, prompt FROM assay.llm_logs"))] == ["w1"]  # fmt: skip


def test_a_data_modifying_cte_through_query_is_refused(engine: sa.Engine) -> None:
    insert_logs(engine, [log("w1", BASE)])
    cte = slipped_past_the_config_check(
        "WITH gone AS (DELETE FROM assay.llm_logs RETURNING *) SELECT id, ts, prompt FROM gone"
    )
    with pytest.raises(SourceError):
        read(engine, cte)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assay.llm_logs")).scalar_one() == 1


def test_a_slow_warehouse_read_is_cut_off_by_the_statement_timeout(engine: sa.Engine) -> None:
    insert_logs(engine, [log("w1", BASE)])
    sleepy = slipped_past_the_config_check(
        "SELECT id, ts, prompt FROM assay.llm_logs, pg_sleep(5)", statement_timeout="1s"
    )
    with pytest.raises((SourceError, TransientError), match="statement timeout"):
        read(engine, sleepy)


@pytest.mark.usefixtures("prefect_api")
async def test_a_failure_after_the_score_write_keeps_nothing_and_the_rerun_is_clean(
    engine: sa.Engine,
) -> None:
    insert_logs(engine, [log(f"p{i:02d}", BASE + timedelta(minutes=i)) for i in range(12)])
    job = parse_job(
        {
            "deployment": "atomic",
            "source": {"initial_lookback": "1d", "page_size": 10},
            "evaluators": [{"name": "pii"}, {"name": "refusal"}],
        }
    )
    # A fault injected in the database: the page's counter update (after its score COPY) fails.
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE FUNCTION public.fail_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.scored > OLD.scored THEN RAISE EXCEPTION 'injected failure'; END IF; "
            "RETURN NEW; END $$"
        ))  # fmt: skip
        conn.execute(sa.text(
            "CREATE TRIGGER fail_counts BEFORE UPDATE ON assay.eval_runs "
            "FOR EACH ROW EXECUTE FUNCTION public.fail_counts()"
        ))  # fmt: skip
    with pytest.raises(Exception, match="injected failure"):
        await evaluate_recent(job, until=UNTIL)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assay.scores")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM assay.watermarks")).scalar_one() == 0
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER fail_counts ON assay.eval_runs"))

    summary = await evaluate_recent(job, until=UNTIL)

    assert (summary.status, summary.pulled, summary.scored) == ("completed", 12, 24)
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT (log_id, evaluator)) FROM assay.scores")
        ).one()
        watermark = conn.execute(sa.text("SELECT log_id FROM assay.watermarks")).scalar_one()
    assert tuple(keys) == (24, 24) and watermark == "p11"
