"""`assay init` guesses like a person on tables of several shapes (a uuid key under another name,
conversation and org columns, passages as a JSON array, thumbs as numbers, booleans or words),
writes what the feedback values mean into the job, and the first `assay run` of the job it
wrote succeeds: init and the data contract agree on every value they name."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasks.config import load_job
from tests.cli import assay

pytestmark = pytest.mark.slow
NOW = datetime.now(UTC).replace(microsecond=0)
PASSAGES = json.dumps(["Refunds take five days.", "Orders ship in two days."])
SHAPES = {
    # The table from the issue: thumbs as smallint 1 / -1 (and no vote).
    "numbers": ("thumbs smallint", [1, -1, None, 1]),
    "booleans": ("helpful boolean", [True, False, None, True]),
    "words": ("feedback text", ["up", "down", None, "Up"]),
}


def chat_events(engine: sa.Engine, table: str, feedback_column: str, votes: list[object]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE public.{table} (event_uuid uuid PRIMARY KEY, happened_at timestamptz,"
            " conversation text, org_slug text, input_text text, output_text text,"
            f" retrieved jsonb, usd numeric, {feedback_column})"
        ))  # fmt: skip
        for i, vote in enumerate(votes):
            conn.execute(
                sa.text(f"INSERT INTO public.{table} VALUES (gen_random_uuid(), :ts, :conv,"
                        " 'acme-inc', :q, 'Refunds take five days.', CAST(:ctx AS jsonb), 0.0004,"
                        " :vote)"),
                {"ts": NOW - timedelta(hours=3, minutes=10 - i), "conv": f"c{i // 2}",
                 "q": f"When is my refund {i}?", "ctx": PASSAGES, "vote": vote},
            )  # fmt: skip


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_init_guesses_and_the_first_run_succeeds(
    shape: str, engine: sa.Engine, assay_env: str, tmp_path: Path
) -> None:
    column, votes = SHAPES[shape]
    table = f"chat_events_{shape}"
    chat_events(engine, table, column, votes)
    done = assay("init", f"chat-{shape}", "--table", f"public.{table}", db_url=assay_env,
                 cwd=tmp_path, columns=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    job = load_job(tmp_path / f"deployments/jobs/chat-{shape}.yaml")
    mapped = job.source.columns
    assert mapped["id"] == "event_uuid" and mapped["ts"] == "happened_at"
    assert mapped["session_id"] == "conversation" and mapped["customer_id"] == "org_slug"
    assert mapped["context"] == "retrieved" and mapped["cost_usd"] == "usd"
    assert mapped["prompt"] == "input_text" and mapped["response"] == "output_text"
    assert mapped["feedback"] == column.split()[0]
    assert job.source.feedback_values is not None  # what the values mean, written down
    assert {"repeated_question", "unanswered_final_turn"} <= {e.name for e in job.evaluators}

    ran = assay("run", f"chat-{shape}", db_url=assay_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with engine.connect() as conn:
        quarantined = conn.execute(sa.text(
            "SELECT count(*) FROM assay.quarantine WHERE deployment = :d"), {"d": f"chat-{shape}"}
        ).scalar_one()  # fmt: skip
        labels = conn.execute(sa.text(
            "SELECT label, count(*) FROM assay.labels WHERE source = 'user_feedback'"
            " AND deployment = :d GROUP BY 1"), {"d": f"chat-{shape}"}
        ).all()  # fmt: skip
    assert quarantined == 0
    # The end users' votes arrive as feedback: two positive, one negative, whatever the type.
    assert dict(labels) == {"positive": 2, "negative": 1}
