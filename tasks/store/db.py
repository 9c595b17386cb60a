"""Database access: engines from settings, the embedded fallback, and `assay migrate`."""

import hashlib
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import psycopg
import sqlalchemy as sa
from pydantic import SecretStr

from tasks.errors import ConfigError, MigrationEdited
from tasks.secrets import resolve
from tasks.settings import get_settings
from tasks.store.sql import migration_files, query, view_files

T = TypeVar("T")
#: Errors of a connection that dropped or was terminated (psycopg's, or SQLAlchemy's wrapping).
DROPPED = (psycopg.OperationalError, psycopg.InterfaceError, sa.exc.OperationalError,
           sa.exc.InterfaceError)  # fmt: skip


def on_fresh_connections(
    work: Callable[[], T],
    attempts: int,
    give_up: Callable[[str], Exception],
    on_drop: Callable[[], None] | None = None,
) -> T:
    """`work()`, again (with backoff) when its connection dropped: for work that commits whole
    or not at all. After `attempts`, raises `give_up(what went wrong)`."""
    problem = ""
    for attempt in range(attempts):
        try:
            return work()
        except DROPPED as exc:
            problem = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
            if on_drop is not None:
                on_drop()
        if attempt + 1 < attempts:
            time.sleep(0.2 * 2**attempt)
    raise give_up(problem)


# A fixed key so every `assay migrate`, in any process, serializes on the same lock.
MIGRATION_LOCK_KEY = 0x61737361_79000001 & 0x7FFFFFFFFFFFFFFF


def sqlalchemy_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and route them to psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def embedded_database_url(home: Path) -> str:
    """Start (or reattach to) an embedded Postgres under `home`; it outlives this process."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver

        home.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(home.resolve() / "pgdata", cleanup_mode=None)
    return str(server.get_uri())


def stop_embedded(home: Path) -> bool:
    """Stop the embedded Postgres under `home` if it runs (its data stays); False if none runs."""
    import os
    import signal

    pidfile = home.resolve() / "pgdata" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
        # A stale pid file may name another process by now: only a postgres is signalled.
        cmdline = Path(f"/proc/{pid}/cmdline")
        if Path("/proc/self").exists() and b"postgres" not in cmdline.read_bytes():
            return False
        # SIGINT is Postgres's fast shutdown: sessions end, the data is left consistent.
        # (pgserver's own stop waits for every process that ever attached to let go.)
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError):
        return False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def database_url() -> SecretStr:
    settings = get_settings()
    if settings.database_url is not None:
        return SecretStr(resolve(settings.database_url.get_secret_value()))
    return SecretStr(embedded_database_url(settings.home))


def warehouse_url() -> SecretStr:
    settings = get_settings()
    if settings.warehouse_url is not None:
        return SecretStr(resolve(settings.warehouse_url.get_secret_value()))
    return database_url()


#: Every session reads and writes in UTC, whatever the server's or the role's TimeZone: a naive
#: `timestamp` column is compared in SQL and converted in Python by the same rule (it is UTC).
SESSION_OPTIONS = "-c TimeZone=UTC"


@cache
def _engine(url: str) -> sa.Engine:
    return sa.create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        pool_size=4,
        connect_args={"options": SESSION_OPTIONS},
    )


POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


def engine_for(url: SecretStr, setting: str = "ASSAY_DATABASE_URL") -> sa.Engine:
    """An engine for a Postgres URL; `setting` names where the URL came from, for the error."""
    scheme = url.get_secret_value().split("://", 1)[0] if "://" in url.get_secret_value() else ""
    if scheme.lower() not in POSTGRES_SCHEMES:
        shown = f"the scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigError(
            f"{setting} has {shown}; Assay needs Postgres: postgresql://USER@HOST:5432/DB"
        )
    try:
        return _engine(url.get_secret_value())
    except sa.exc.ArgumentError:
        # The message would echo the URL, password included.
        raise ConfigError(f"{setting} is not a valid Postgres URL") from None


def scores_engine() -> sa.Engine:
    return engine_for(database_url())


#: The migration that introduced rollups; scores written before it get their rollups built once.
ROLLUPS_MIGRATION = "0007_create_rollups.sql"


def build_rollups_of_existing_scores(conn: sa.Connection) -> None:
    """Upgrading a database that already holds scores: roll them up, deployment by deployment.
    (Usage rollups start with the next run: they come from the logs as runs read them.)"""
    from tasks.store.rollups import refresh_score_rollups

    spans = conn.execute(sa.text(query("migrate", "scored_spans"))).all()
    conn.commit()
    for deployment, first, last in spans:
        with conn.begin():
            refresh_score_rollups(conn, deployment, first, last)


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edited_migrations(applied: dict[str, str | None]) -> list[str]:
    """The applied migrations whose file no longer holds what was applied."""
    return [
        path.name
        for path in migration_files()
        if applied.get(path.name) is not None and applied[path.name] != checksum(path)
    ]


def refuse_edited(applied: dict[str, str | None]) -> None:
    if edited := edited_migrations(applied):
        raise MigrationEdited(
            f"sql/migrations/{edited[0]} changed after it was applied to this database "
            "(migrations are forward-only): restore it and put the change in a new migration"
        )


def migrate(engine: sa.Engine) -> list[str]:
    """Apply pending migrations in order, then re-apply views. Returns the files applied.

    A session-level advisory lock makes concurrent runs wait for each other; whoever comes
    second finds nothing left to do. Each applied file's checksum is kept, and a file changed
    since it was applied stops the migration (MigrationEdited, exit 2) before anything runs.
    """
    applied: list[str] = []
    with engine.connect() as conn:
        conn.execute(sa.text(query("migrate", "lock_migrations")), {"key": MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():
                conn.execute(sa.text(query("migrate", "create_schema")))
                conn.execute(sa.text(query("migrate", "create_migrations_table")))
                conn.execute(sa.text(query("migrate", "add_migration_checksums")))
                rows = conn.execute(sa.text(query("migrate", "applied_migrations"))).all()
                done: dict[str, str | None] = {row.name: row.checksum for row in rows}
            refuse_edited(done)
            for path in migration_files():
                if path.name in done:
                    continue
                with conn.begin():
                    conn.exec_driver_sql(path.read_text())
                    conn.execute(
                        sa.text(query("migrate", "record_migration")),
                        {"name": path.name, "checksum": checksum(path)},
                    )
                applied.append(path.name)
            with conn.begin():
                for path in migration_files():
                    if path.name in done and done[path.name] is None:
                        conn.execute(
                            sa.text(query("migrate", "remember_checksum")),
                            {"name": path.name, "checksum": checksum(path)},
                        )
                for path in view_files():
                    conn.exec_driver_sql(path.read_text())
            if ROLLUPS_MIGRATION in applied:
                build_rollups_of_existing_scores(conn)
        finally:
            conn.execute(
                sa.text(query("migrate", "unlock_migrations")), {"key": MIGRATION_LOCK_KEY}
            )
            conn.commit()
    return applied
