"""Incremental pull: keyset pages of source rows after a (ts, id) cursor, up to `until`.

Statements are built with SQLAlchemy Core from validated identifiers; every value from
config or state is a bound parameter.
"""

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from pydantic import BaseModel

from tasks.config import SourceConfig
from tasks.errors import SourceError, TransientError
from tasks.redact import redact
from tasks.store.rows import Cursor
from tasks.store.sanitize import tolerant_json_loads
from tasks.store.sql import query

#: Connection-level failures worth a retry: admin shutdown / terminated backend, crash recovery,
#: too many connections, serialization failures.
TRANSIENT_SQLSTATES = frozenset(
    {"57P01", "57P02", "57P03", "53300", "40001", "40P01", "08000", "08001", "08003", "08006"}
)


def _relation(source: SourceConfig, columns: set[str]) -> sa.FromClause:
    column_objects: list[sa.ColumnClause[Any]] = [sa.column(name) for name in sorted(columns)]
    if source.table is not None:
        schema, name = source.table_parts()
        return sa.table(name, *column_objects, schema=schema)
    assert source.query is not None
    return sa.text(source.query).columns(*column_objects).subquery("assay_source")


def _slot(source: SourceConfig, slot: str, column: sa.ColumnElement[Any]) -> Any:
    """A mapped column under its slot's name; feedback read through `source.feedback_values`
    (values bound as parameters, compared as lower-case text; an unknown value stays as it is,
    for the contract to quarantine with the value shown)."""
    if slot != "feedback" or source.feedback_values is None:
        return column.label(slot)
    as_text = sa.func.lower(sa.cast(column, sa.Text))
    # Equalities, not IN: an expanding IN parameter cannot be rendered before the page's own
    # binds are known (`read_rows` compiles once, then binds).
    cases = [
        (sa.or_(*(as_text == sa.literal(value) for value in values)), sa.literal(meaning))
        for meaning, values in source.feedback_values.as_text().items()
    ]
    return sa.case(*cases, else_=sa.cast(column, sa.Text)).label(slot)


def _mapped_select(
    source: SourceConfig, extra: tuple[str, ...] = ()
) -> tuple[sa.Select[Any], sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """SELECT of every mapped slot (labelled by slot), with the id and ts columns; `extra`
    source columns are selected too, under their own names prefixed by `extra_`."""
    mapping = source.column_mapping()
    relation = _relation(source, set(mapping.values()) | set(source.filters) | set(extra))
    stmt = sa.select(
        *(_slot(source, slot, relation.c[column]) for slot, column in mapping.items()),
        *(relation.c[column].label(f"extra_{column}") for column in extra),
    )
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
    return read_rows(conn, source, page_statement(source, first_page=after is None), params)


def undated_rows(conn: sa.Connection, source: SourceConfig) -> list[dict[str, Any]]:
    """Rows whose timestamp is NULL: no window ever reads them, so each run looks for them."""
    stmt, _id_col, ts_col = _mapped_select(source)
    stmt = stmt.where(ts_col.is_(None)).limit(sa.bindparam("limit"))
    return read_rows(conn, source, stmt, {"limit": source.page_size})


def count_between(
    conn: sa.Connection, source: SourceConfig, after: datetime, until: datetime
) -> int:
    """Rows with `after < ts <= until` (the source's filters applied)."""
    stmt, _id_col, ts_col = _mapped_select(source)
    counted = sa.select(sa.func.count().label("n")).select_from(
        stmt.where(ts_col > sa.bindparam("after"), ts_col <= sa.bindparam("until")).subquery()
    )
    [row] = read_rows(conn, source, counted, {"after": after, "until": until})
    return int(row["n"])


def counts_per_chunk(
    conn: sa.Connection, source: SourceConfig, start: datetime, end: datetime, chunk: timedelta
) -> dict[int, int]:
    """Rows in [start, end) per chunk (chunk number -> rows; empty chunks are absent), in one
    grouped query: a backfill runs only the chunks that hold logs."""
    stmt, _id_col, ts_col = _mapped_select(source)
    seen = stmt.where(ts_col >= sa.bindparam("start"), ts_col < sa.bindparam("end")).subquery()
    # Epoch seconds of a naive column are its UTC reading (sessions run in UTC: tasks/store/db).
    offset = sa.extract("epoch", seen.c.ts) - sa.bindparam("start_epoch")
    bucket = sa.func.floor(offset / sa.bindparam("chunk_s")).label("chunk")
    counted = sa.select(bucket, sa.func.count().label("n")).group_by(bucket)
    params = {"start": start, "end": end, "start_epoch": start.timestamp(),
              "chunk_s": chunk.total_seconds()}  # fmt: skip
    return {int(row["chunk"]): int(row["n"]) for row in read_rows(conn, source, counted, params)}


def source_columns(conn: sa.Connection, source: SourceConfig) -> dict[str, str]:
    """Column -> Postgres type name of the source (a table's, or what a `query:` returns; no
    rows read), in a READ ONLY transaction. Empty when the table does not exist or is hidden."""
    if source.table is not None:
        schema, name = source.table_parts()
        with read_only(conn, source) as cur:
            cur.execute(
                *_bound(conn, query("source", "table_columns"), {"schema": schema, "table": name})
            )
            return {row["column_name"]: _type_name(row) for row in cur.fetchall()}
    assert source.query is not None
    stmt: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(
        sa.text(source.query).columns().subquery("assay_source")
    )
    driver = conn.connection.driver_connection
    assert driver is not None
    with read_only(conn, source) as cur:
        # LIMIT 0 rendered inline: a bound limit would reach the server as a bare placeholder.
        empty = stmt.limit(0).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        cur.execute(str(empty), {})  # params given: `%%` in the query's text becomes `%`
        described = cur.description or []
    types = driver.adapters.types
    return {
        column.name: (info.name if (info := types.get(column.type_code)) else "unknown")
        for column in described
    }


def missing_table(
    deployment: str, source: SourceConfig, columns: dict[str, str]
) -> tuple[str, str] | None:
    """(what is wrong, what to do) when the job's source table is not there (`columns` as
    `source_columns` read them: empty for a table that does not exist or is hidden), else None.
    One wording for `assay doctor` and `assay deploy`."""
    if source.table is None or columns:
        return None
    return (
        f"no table {source.table} (or the warehouse user cannot see it)",
        f"create it, or fix source.table in deployments/jobs/{deployment}.yaml",
    )


def query_columns(conn: sa.Connection, source: SourceConfig) -> set[str]:
    """The columns a `query:` source returns (no rows read), in a READ ONLY transaction."""
    assert source.query is not None
    return set(source_columns(conn, source))


def _type_name(row: dict[str, Any]) -> str:
    # information_schema says ARRAY / USER-DEFINED; udt_name says which (_text, jsonb, ...).
    if row["data_type"] in ("ARRAY", "USER-DEFINED"):
        return str(row["udt_name"]).removeprefix("_") + (
            "[]" if row["data_type"] == "ARRAY" else ""
        )
    return str(row["data_type"])


def _bound(conn: sa.Connection, sql: str, params: dict[str, Any]) -> tuple[str, Any]:
    compiled = sa.text(sql).compile(dialect=conn.dialect)
    return str(compiled), compiled.construct_params(params)


def rows_by_id(
    conn: sa.Connection, source: SourceConfig, log_ids: list[str]
) -> list[dict[str, Any]]:
    """Source rows with these ids (in `(ts, id)` order), e.g. to replay quarantined logs."""
    stmt, id_col, ts_col = _mapped_select(source)
    stmt = stmt.where(sa.cast(id_col, sa.Text).in_(log_ids))
    return read_rows(conn, source, stmt.order_by(ts_col, id_col), {})


#: The source slot that holds each unit kind's id.
UNIT_SLOTS = {"session": "session_id", "trace": "trace_id"}


class UnitEnd(BaseModel):
    """What marks a unit as ended before it has been idle: a value of a source column (a
    session's `status: closed`), or, for traces, the arrival of a root span (exporters send a
    span when it ends, and the root ends last)."""

    column: str | None = None
    values: list[str] = []
    root_span: bool = False


def completed_units(
    conn: sa.Connection,
    source: SourceConfig,
    kind: str,
    since: datetime,
    until: datetime,
    idle: Any,
    end: UnitEnd | None = None,
) -> list[dict[str, Any]]:
    """Units (sessions or traces) with an item after `since` that are complete as seen at
    `until`: their last item up to `until` is at least `idle` before it, or an end marker
    was logged. Unit id, last item time, whether it ended explicitly, and its item count."""
    slot = UNIT_SLOTS[kind]
    mapping = source.column_mapping()
    if slot not in mapping:
        return []
    end = end or UnitEnd()
    extra = (end.column,) if end.column and end.values else ()
    stmt, _id_col, _ts_col = _mapped_select(source, extra)
    seen = stmt.subquery("seen")
    unit = seen.c[slot]
    last = sa.func.max(seen.c.ts)
    markers: list[sa.ColumnElement[bool]] = []
    if extra:
        markers.append(sa.cast(seen.c[f"extra_{end.column}"], sa.Text).in_(end.values))
    if end.root_span and "parent_span_id" in mapping:
        # Exporters write a root's missing parent as NULL or as an empty string.
        markers.append(sa.func.coalesce(sa.cast(seen.c.parent_span_id, sa.Text), "") == "")
    ended = (sa.func.bool_or(sa.or_(*markers)) if markers else sa.literal(False)).label("ended")
    # Values bound in the statement: an end marker's IN list is rendered at compile time.
    grouped = (
        sa.select(
            sa.cast(unit, sa.Text).label("unit_id"),
            last.label("last_ts"),
            ended,
            sa.func.count().label("items"),
        )
        .where(unit.is_not(None), seen.c.ts <= sa.bindparam("until", until))
        .group_by(unit)
        .having(last > sa.bindparam("since", since))
        .having(sa.or_(last <= sa.bindparam("complete_by", until - idle), ended))
        .order_by(unit)
    )
    return read_rows(conn, source, grouped, {})


def rows_by_unit(
    conn: sa.Connection, source: SourceConfig, kind: str, unit_ids: list[str], until: datetime
) -> list[dict[str, Any]]:
    """Every row of these sessions or traces up to `until`, in `(ts, id)` order."""
    stmt, id_col, ts_col = _mapped_select(source)
    unit_col = stmt.selected_columns[UNIT_SLOTS[kind]]
    # Values bound in the statement: the expanding IN list is rendered at compile time.
    stmt = stmt.where(
        sa.cast(unit_col, sa.Text).in_(unit_ids), ts_col <= sa.bindparam("until", until)
    )
    return read_rows(conn, source, stmt.order_by(ts_col, id_col), {})


def read_rows(
    conn: sa.Connection, source: SourceConfig, stmt: sa.Select[Any], params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Run one warehouse read (see `read_only`).

    Compiled by SQLAlchemy, executed on the psycopg cursor: SQLAlchemy's Row objects cost as
    much as the fetch itself, and these rows are turned into dicts right away anyway. JSON the
    driver cannot parse (nested past the recursion limit) becomes a marker the contract
    quarantines, instead of an error that stops every page after it.
    """
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    driver = conn.connection.driver_connection
    assert driver is not None
    set_json_loads(tolerant_json_loads, driver)
    with read_only(conn, source) as cur:
        cur.execute(str(compiled), compiled.construct_params(params))
        return cur.fetchall()


@contextlib.contextmanager
def read_only(conn: sa.Connection, source: SourceConfig) -> Iterator[Any]:
    """A dict cursor in a transaction of its own: READ ONLY, with the source's statement
    timeout, rolled back afterwards (it only read). Driver errors become a TransientError
    (dropped connection, timeout) or a SourceError, with the driver's first line, redacted."""
    driver = conn.connection.driver_connection
    assert driver is not None
    timeout_ms = int(source.statement_timeout.total_seconds() * 1000)
    try:
        if driver.info.transaction_status != TransactionStatus.IDLE:
            driver.rollback()
        with driver.cursor(row_factory=dict_row) as cur:
            cur.execute(query("source", "read_only"))
            timeout = sa.text(query("source", "statement_timeout")).compile(dialect=conn.dialect)
            cur.execute(str(timeout), timeout.construct_params({"timeout_ms": str(timeout_ms)}))
            yield cur
        driver.rollback()
    except psycopg.Error as exc:
        with contextlib.suppress(psycopg.Error):
            driver.rollback()
        # Keep the driver's message (it names the missing column or table), drop the SQL echo.
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        if isinstance(exc, psycopg.OperationalError) or exc.sqlstate in TRANSIENT_SQLSTATES:
            raise TransientError(f"the warehouse connection failed: {detail}") from None
        raise SourceError(f"reading the source failed: {detail}") from None
