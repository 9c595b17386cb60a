"""`assay demo`, the first command a user runs: exit 0, three apps evaluated, the golden
dataset checked for two versions of the bot, the gate passing one and failing the other."""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import assay

pytestmark = pytest.mark.slow


def test_the_demo_runs_end_to_end(assay_env: str) -> None:
    done = assay("demo", "--scale", "0.05", db_url=assay_env, columns=100, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for deployment in ("support-bot", "search-rag", "agent-otel"):
        assert f"{deployment} · manual run" in out
    assert "golden dataset support-golden" in out
    assert out.count("gate passed") == 1 and out.count("gate FAILED") == 1
    assert "contains_expected regressed: policy-" in out
    assert "--target prompt:deployments/prompts/support-bare.yaml" in out  # prompt A vs B
    flat = " ".join(out.split())
    for session_evaluator in ("turn_count", "repeated_question", "conversation_resolved"):
        assert session_evaluator in out  # the support bot's conversations, scored as units
    for trace_evaluator in ("tool_loop", "tool_error_rate", "agent_goal_completed"):
        assert trace_evaluator in out  # the agent's runs, assembled from its spans
    assert re.search(r"sessions: [\d,]+ evaluated", flat)
    assert re.search(r"traces: [1-9][\d,]* evaluated", flat)
    assert re.search(r"\(\d+ synthetic labels of support-bot's answer_relevance judge\)", flat)
    assert "judge vs people" in flat and "overall" in flat
    assert re.search(r"corrected by \d+ human labels \(prediction-powered\)", flat)
    assert "Traceback" not in done.stderr


def test_a_second_demo_starts_from_nothing(assay_env: str, engine: sa.Engine) -> None:
    """Usage, labels and spend after two demos are those of one (the reset once left the usage
    rollups, so two demos showed twice the requests for the same scored logs)."""

    def totals() -> tuple[int, int, int]:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT (SELECT CAST(coalesce(sum(requests), 0) AS bigint) FROM assay.usage_rollups), "
                "(SELECT count(*) FROM assay.labels), "
                "(SELECT count(*) FROM assay.scores)")).one()  # fmt: skip

    for _ in range(2):
        done = assay("demo", "--scale", "0.02", db_url=assay_env, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        if _ == 0:
            first = totals()
    requests, labels, scores = totals()
    assert first[0] > 0 and first[1] > 0
    assert abs(requests - first[0]) <= 0.02 * first[0]  # not twice
    assert abs(labels - first[1]) <= 0.02 * first[1] and abs(scores - first[2]) <= 0.02 * first[2]


def test_demo_stop_stops_the_embedded_postgres_and_keeps_its_data(tmp_path: Path) -> None:
    """Without ASSAY_DATABASE_URL the demo starts an embedded Postgres that outlives it (for
    `assay report` and the dashboard); `assay demo --stop` stops it, and says when none runs."""
    import psycopg

    from tasks.store.db import embedded_database_url

    url = embedded_database_url(tmp_path)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    stopped = assay("demo", "--stop", db_url="", env={"ASSAY_HOME": str(tmp_path)})
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "stopped the embedded Postgres" in stopped.stdout
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
    assert (tmp_path / "pgdata" / "PG_VERSION").exists()  # the data stays
    again = assay("demo", "--stop", db_url="", env={"ASSAY_HOME": str(tmp_path)})
    assert again.returncode == 0 and "no embedded Postgres runs" in again.stdout
