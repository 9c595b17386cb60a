"""Migrations against real Postgres: idempotent, concurrent-safe; score keys unique."""

import threading

import pytest
import sqlalchemy as sa

from tasks.db import migrate
from tasks.sql import migration_files

TABLES = {"llm_logs", "eval_runs", "scores", "watermarks", "quarantine", "schema_migrations"}


def test_migrate_creates_the_schema_and_is_a_no_op_the_second_time(engine: sa.Engine) -> None:
    # The template already ran every migration: running again applies nothing.
    assert migrate(engine) == []
    with engine.connect() as conn:
        tables = set(
            conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema='assay'"
                )
            ).scalars()
        )
        recorded = conn.execute(sa.text("SELECT name FROM assay.schema_migrations")).scalars().all()
    assert tables >= TABLES
    assert sorted(recorded) == [p.name for p in migration_files()]


def test_concurrent_migrations_on_a_fresh_database_apply_once(admin_url: str) -> None:
    from tasks.db import _engine
    from tests import pg

    name = pg.create_database(admin_url)
    url = pg.as_sqlalchemy_url(pg.with_database(admin_url, name))
    try:
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                results.append(migrate(sa.create_engine(url)))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        applied = sorted(results, key=len)
        assert applied[:-1] == [[], [], []]
        assert applied[-1] == [p.name for p in migration_files()]
    finally:
        _engine(url).dispose()
        pg.drop_database(admin_url, name)


def test_scores_are_unique_per_log_evaluator_and_version(engine: sa.Engine) -> None:
    insert = sa.text(
        "INSERT INTO assay.scores (deployment, log_id, evaluator, evaluator_version, log_ts, status,"
        " score, passed, run_id) VALUES ('d', 'l1', 'pii', '1', now(), 'ok', 1, true,"
        " gen_random_uuid())"
    )
    with engine.begin() as conn:
        conn.execute(insert)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert)


def test_an_ok_score_must_carry_a_value(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO assay.scores (deployment, log_id, evaluator, evaluator_version,"
                " log_ts, status, run_id) VALUES ('d', 'l', 'e', '1', now(), 'ok', gen_random_uuid())"
            )
        )
