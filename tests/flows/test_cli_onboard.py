"""`assay init` against real tables, then the job it wrote runs as it is (installed CLI)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasks.config import load_job
from tests.cli import assay

pytestmark = pytest.mark.slow
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def ux_logs(engine: sa.Engine) -> str:
    """A team's own table: their names, their types, one column name that needs quoting."""
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE SCHEMA "App Logs"'))
        conn.execute(sa.text(
            'CREATE TABLE "App Logs".ux_logs (request_id uuid PRIMARY KEY, created_at timestamptz,'
            ' user_input text, model_output varchar(2000), llm_model text, tenant text,'
            ' "Latency MS" int, completion_tokens bigint, extra jsonb)'
        ))  # fmt: skip
        for i in range(3):
            conn.execute(
                sa.text('INSERT INTO "App Logs".ux_logs VALUES (gen_random_uuid(), :ts, :q, :a,'
                        " 'gpt-4o-mini', 'acme', 120, 40, '{}')"),
                {"ts": NOW - timedelta(hours=2, minutes=i), "q": f"How do I reset {i}?",
                 "a": "Open settings, then choose reset password."},
            )  # fmt: skip
    return "ux_logs"


def test_init_maps_a_new_table_and_the_written_job_runs(
    ux_logs: str, engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    with engine.begin() as conn:  # a plain schema name, for --table
        conn.execute(sa.text('ALTER SCHEMA "App Logs" RENAME TO app_logs'))
    done = assay("init", "ux-bot", "--table", "app_logs.ux_logs", db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for field, column in [("id", "request_id"), ("ts", "created_at"), ("prompt", "user_input"),
                          ("response", "model_output"), ("model", "llm_model"),
                          ("customer_id", "tenant"), ("output_tokens", "completion_tokens")]:  # fmt: skip
        assert f"│ {field}" in done.stdout and column in done.stdout
    assert "'Latency MS'" in done.stdout and "query:" in done.stdout  # explained, not guessed
    written = tmp_path / "deployments/jobs/ux-bot.yaml"
    job = load_job(written)
    assert job.source.columns["prompt"] == "user_input"
    assert {e.name for e in job.evaluators} >= {"pii", "secrets", "refusal"}
    assert all(e.model is None for e in job.evaluators)  # no judge is on until the user says so
    assert "# - name: answer_relevance" in written.read_text()
    assert job.budget.max_usd_per_run is not None and job.sampling.rate <= 0.1

    again = assay("init", "ux-bot", "--table", "app_logs.ux_logs", db_url=assay_env, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr  # never overwrites silently

    ran = assay("run", "ux-bot", db_url=assay_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with engine.connect() as conn:
        scored = conn.execute(
            sa.text("SELECT count(DISTINCT log_id) FROM assay.scores WHERE deployment = 'ux-bot'")
        ).scalar()
    assert scored == 3


def test_a_table_with_nothing_recognisable_writes_nothing_and_says_what_to_map(
    engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.blobs (a int, b text, c jsonb)"))
    done = assay("init", "blobs", "--table", "public.blobs", db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 2
    assert "--map id=COLUMN --map ts=COLUMN --map prompt=COLUMN" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "deployments/jobs/blobs.yaml").exists()

    missing = assay("init", "blobs", "--table", "public.nope", db_url=assay_env, cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_named_column_that_is_missing_is_one_error_listing_every_one(
    ux_logs: str, assay_env: str, tmp_path: Path
) -> None:
    config = tmp_path / "ux.yaml"
    config.write_text(
        "deployment: ux\nsource:\n  table: public.events\n  columns: {id: request_id, "
        "ts: created_at, prompt: question, response: answer, model: llm_model}\n"
        "evaluators: [{name: refusal}]\n"
    )
    with sa.create_engine(assay_env).begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.events (request_id text, created_at timestamptz,"
                             " user_input text, llm_model text)"))  # fmt: skip
    done = assay("run", "ux", "--config", str(config), db_url=assay_env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "prompt -> question" in message and "response -> answer" in message
    assert "source.columns" in message and "Traceback" not in done.stderr
