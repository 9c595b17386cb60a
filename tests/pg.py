"""Find a real Postgres for the tests: ASSAY_TEST_DATABASE_URL, else 127.0.0.1:5432, else pgserver."""

import os
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def admin_url() -> str:
    """A URL to a maintenance database on a server where we may create databases."""
    explicit = os.environ.get("ASSAY_TEST_DATABASE_URL")
    if explicit:
        return explicit
    if _reachable(LOCAL_URL):
        return LOCAL_URL
    from tasks.store.db import embedded_database_url

    return embedded_database_url(Path(".assay/test"))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (psycopg conninfo handles both forms)."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**params)


def as_sqlalchemy_url(conninfo: str) -> str:
    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = p.get("user", "postgres")
    password = f":{p['password']}" if p.get("password") else ""
    host = p.get("host", "127.0.0.1")
    if str(host).startswith("/"):
        return f"postgresql+psycopg://{user}{password}@/{p['dbname']}?host={host}"
    return f"postgresql+psycopg://{user}{password}@{host}:{p.get('port', 5432)}/{p['dbname']}"


def create_database(admin: str, template: str | None = None) -> str:
    name = f"assay_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
