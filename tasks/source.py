"""Incremental pull: keyset pages of source rows after a (ts, id) cursor, up to `until`.

Statements are built with SQLAlchemy Core from validated identifiers; every value from
config or state is a bound parameter.
"""

from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import dict_row
from pydantic import BaseModel

from tasks.config import SourceConfig
from tasks.errors import SourceError


class Cursor(BaseModel):
    """Position after the last row processed; the watermark stores exactly this."""

    ts: datetime
    log_id: Any


def _relation(source: SourceConfig, columns: set[str]) -> sa.FromClause:
    column_objects: list[sa.ColumnClause[Any]] = [sa.column(name) for name in sorted(columns)]
    if source.table is not None:
        schema, name = source.table_parts()
        return sa.table(name, *column_objects, schema=schema)
    assert source.query is not None
    return sa.text(source.query).columns(*column_objects).subquery("assay_source")


def _mapped_select(
    source: SourceConfig,
) -> tuple[sa.Select[Any], sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """SELECT of every mapped slot (labelled by slot), with the id and ts columns."""
    mapping = source.column_mapping()
    relation = _relation(source, set(mapping.values()) | set(source.filters))
    stmt = sa.select(*(relation.c[column].label(slot) for slot, column in mapping.items()))
    for column, value in source.filters.items():
        if isinstance(value, list):
            stmt = stmt.where(relation.c[column].in_(value))
        else:
            stmt = stmt.where(relation.c[column] == value)
    return stmt, relation.c[mapping["id"]], relation.c[mapping["ts"]]


def page_statement(source: SourceConfig, first_page: bool) -> sa.Select[Any]:
    """The page query. Binds: `start` (first page) or `after_ts`/`after_id`, `until`, `limit`."""
    stmt, id_col, ts_col = _mapped_select(source)
    if first_page:
        stmt = stmt.where(ts_col >= sa.bindparam("start"))
    else:
        stmt = stmt.where(
            sa.tuple_(ts_col, id_col)
            > sa.tuple_(sa.bindparam("after_ts"), sa.bindparam("after_id"))
        )
    stmt = stmt.where(ts_col <= sa.bindparam("until"))
    return stmt.order_by(ts_col, id_col).limit(sa.bindparam("limit"))


def fetch_page(
    conn: sa.Connection,
    source: SourceConfig,
    after: Cursor | None,
    start: datetime,
    until: datetime,
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"until": until, "limit": source.page_size}
    if after is None:
        params["start"] = start
    else:
        params["after_ts"], params["after_id"] = after.ts, after.log_id
    # Compiled by SQLAlchemy, executed on the psycopg cursor: SQLAlchemy's Row objects cost as
    # much as the fetch itself, and these rows are turned into dicts right away anyway.
    compiled = page_statement(source, first_page=after is None).compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
    )
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor(row_factory=dict_row) as cur:
            cur.execute(str(compiled), compiled.construct_params(params))
            return cur.fetchall()
    except psycopg.Error as exc:
        conn.rollback()
        # Keep the driver's message (it names the missing column or table), drop the SQL echo.
        detail = str(exc).strip().splitlines()[0]
        raise SourceError(f"reading the source failed: {detail}") from None


def rows_by_id(
    conn: sa.Connection, source: SourceConfig, log_ids: list[str]
) -> list[dict[str, Any]]:
    """Source rows with these ids (in `(ts, id)` order), e.g. to replay quarantined logs."""
    stmt, id_col, ts_col = _mapped_select(source)
    stmt = stmt.where(sa.cast(id_col, sa.Text).in_(log_ids)).order_by(ts_col, id_col)
    try:
        return [dict(row._mapping) for row in conn.execute(stmt)]
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"cannot read the source: {str(exc.orig).strip()}") from None
