"""Migrations against real Postgres: idempotent, concurrent-safe; score keys unique."""

import threading

import pytest
import sqlalchemy as sa

from tasks.store.db import migrate
from tasks.store.sql import migration_files

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
    from tasks.store.db import _engine
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


def test_upgrading_a_database_with_scores_builds_their_rollups(admin_url: str) -> None:
    """A database from before the rollups (migrations up to 0006) keeps its scores reportable."""
    from datetime import UTC, datetime

    from tasks.analytics.report import score_rows
    from tasks.store.db import ROLLUPS_MIGRATION, _engine
    from tests import pg

    name = pg.create_database(admin_url)
    url = pg.as_sqlalchemy_url(pg.with_database(admin_url, name))
    engine = _engine(url)
    try:
        older = [p for p in migration_files() if p.name < ROLLUPS_MIGRATION]
        with engine.begin() as conn:
            for path in older:
                conn.exec_driver_sql(path.read_text())
            conn.execute(sa.text("CREATE TABLE assay.schema_migrations (name text PRIMARY KEY)"))
            for path in older:
                conn.execute(
                    sa.text("INSERT INTO assay.schema_migrations VALUES (:n)"), {"n": path.name}
                )
            for i, passed in enumerate([True, True, False]):
                conn.execute(
                    sa.text(
                        "INSERT INTO assay.scores (deployment, log_id, evaluator, "
                        "evaluator_version, log_ts, status, score, passed, run_id) VALUES "
                        "('old-app', :id, 'pii', '1', :ts, 'ok', :score, :passed, "
                        "'00000000-0000-0000-0000-000000000001')"
                    ),
                    {"id": f"l{i}", "ts": datetime(2026, 3, 1, 10, i, tzinfo=UTC),
                     "score": 1.0 if passed else 0.0, "passed": passed},
                )  # fmt: skip
        assert ROLLUPS_MIGRATION in migrate(engine)
        with engine.connect() as conn:
            (stats,) = score_rows(
                conn, "old-app", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
            )
        assert stats.n == 3 and stats.pass_rate == pytest.approx(2 / 3)
    finally:
        engine.dispose()
        pg.drop_database(admin_url, name)
