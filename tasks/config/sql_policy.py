"""What a user's `query:` source may do, decided on Postgres's own parse tree (pglast, which is
libpg_query), never on the text: comments, quoting, `U&"..."` escapes and schema qualification
cannot hide a call, because the parser has already resolved them to names.

The rule (documented in docs/security.md):
- exactly one statement, and it is a SELECT (WITH ... SELECT, VALUES and TABLE parse as one);
- no data-modifying statement anywhere in the tree (a WITH ... DELETE), no SELECT INTO, no
  FOR UPDATE/SHARE;
- no call of a function that signals sessions, reads or lists server files, sleeps or takes
  advisory locks, changes settings or sequences, runs SQL from a string, or touches large
  objects, replication, WAL or backups: every `pg_*` function except a few pure ones, and
  the named families below;
- no read of the system catalogs (`pg_catalog`, `information_schema`, any `pg_*` relation).

The run's READ ONLY transaction and a read-only role stay the real boundary (docs/security.md);
this check refuses a hostile config at load, with the reason, before it reaches a worker.
"""

from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from tasks.errors import QueryRefused

MAX_QUERY_CHARS = 20_000

#: `pg_*` functions that only compute on their arguments.
PURE_PG_FUNCTIONS = frozenset({"pg_typeof", "pg_column_size", "pg_size_pretty", "pg_size_bytes"})
#: Named families outside the `pg_` prefix (a trailing `*` is a prefix).
DENIED_FUNCTIONS = (
    "lo_*", "dblink*", "query_to_xml*", "cursor_to_xml*", "table_to_xml*", "schema_to_xml*",
    "database_to_xml*", "query_to_xmlschema", "set_config", "setval", "nextval", "currval",
    "lastval", "current_setting", "txid_current*", "binary_upgrade_*", "brin_summarize*",
    "brin_desummarize_range", "gin_clean_pending_list", "xmlexists", "xpath*",
)  # fmt: skip
DENIED_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
#: Statement nodes that write, wherever they sit in the tree.
WRITING_NODES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


def _denied_function(name: str) -> bool:
    name = name.casefold()
    if name.startswith("pg_"):
        return name not in PURE_PG_FUNCTIONS
    return any(
        name.startswith(entry[:-1]) if entry.endswith("*") else name == entry
        for entry in DENIED_FUNCTIONS
    )


class _Inspector(Visitor):
    """Walks every node once (linear in the tree) and keeps the first reason to refuse."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def refuse(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def visit_FuncCall(self, _parent: Any, node: ast.FuncCall) -> None:
        parts = [getattr(part, "sval", "") for part in node.funcname or ()]
        name = parts[-1] if parts else ""
        if _denied_function(name) or (len(parts) > 1 and _denied_schema(parts[0])):
            self.refuse(
                f"query calls {'.'.join(parts)}(), which a source query may not (it has side "
                "effects or reads server state)"
            )

    def visit_RangeVar(self, _parent: Any, node: ast.RangeVar) -> None:
        schema, relation = node.schemaname or "", node.relname or ""
        if _denied_schema(schema) or relation.casefold().startswith("pg_"):
            shown = f"{schema}.{relation}" if schema else relation
            self.refuse(f"query reads {shown}: a source query may not read the system catalogs")

    def visit_IntoClause(self, _parent: Any, _node: ast.IntoClause) -> None:
        self.refuse("query uses SELECT INTO: a source query only reads")

    def visit_LockingClause(self, _parent: Any, _node: ast.LockingClause) -> None:
        self.refuse("query takes row locks (FOR UPDATE/SHARE): a source query only reads")

    def visit(self, _parent: Any, node: Any) -> None:
        if isinstance(node, WRITING_NODES):
            kind = type(node).__name__.removesuffix("Stmt").upper()
            self.refuse(f"query contains {kind}: a source query only reads")


def _denied_schema(schema: str) -> bool:
    return schema.casefold() in DENIED_SCHEMAS


def check_postgres_query(query: str) -> str:
    """The query (trimmed of a trailing `;`) if it is one side-effect-free read; QueryRefused
    saying why otherwise."""
    if len(query) > MAX_QUERY_CHARS:
        raise QueryRefused(f"query is longer than {MAX_QUERY_CHARS:,} characters")
    try:
        statements = parse_sql(query)
    except ParseError as bad:
        raise QueryRefused(f"query is not valid SQL: {bad}") from None
    if len(statements) != 1:
        raise QueryRefused("query must be one statement (no `;` inside)")
    if not isinstance(statements[0].stmt, ast.SelectStmt):
        raise QueryRefused("query must be a single SELECT (or WITH ... SELECT)")
    inspector = _Inspector()
    inspector(statements)
    if inspector.reason:
        raise QueryRefused(inspector.reason)
    return query.strip().rstrip(";").strip()
