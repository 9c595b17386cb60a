"""SQL lives in `sql/`: named queries split by `-- name: NAME` headers, loaded by name."""

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def queries(group: str) -> dict[str, str]:
    """All queries of `sql/queries/<group>.sql`, by name."""
    text = (SQL_DIR / "queries" / f"{group}.sql").read_text()
    parts = _HEADER.split(text)
    named = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    if not named:
        raise ValueError(f"sql/queries/{group}.sql has no '-- name:' sections")
    return named


def query(group: str, name: str) -> str:
    try:
        return queries(group)[name]
    except KeyError:
        raise KeyError(f"no query {name!r} in sql/queries/{group}.sql") from None


def migration_files() -> list[Path]:
    """`NNNN_verb_noun.sql` in order. A repair of a migration that was edited after release is
    `NNNNa_...`: it sorts right after the edited one, so a database that applied the old
    version gets the repair before anything built on the edit (and one that applied the new
    version runs it as a no-op)."""
    return sorted((SQL_DIR / "migrations").glob("[0-9][0-9][0-9][0-9]*_*.sql"))


def view_files() -> list[Path]:
    return sorted((SQL_DIR / "views").glob("*.sql"))
