"""SQL lives in sql/queries/ and is loaded by name: every named query is used by the code, every
name the code asks for exists, and no SQL statement is written inline in Python."""

import re
from pathlib import Path

from tasks.store.sql import SQL_DIR, queries

PROJECT = Path(__file__).resolve().parents[2]
CODE = [p for d in ("tasks", "flows", "evaluators") for p in (PROJECT / d).rglob("*.py")]
_CALL = re.compile(r"""query\(\s*["']([a-z_]+)["']\s*,\s*["']([a-z_0-9]+)["']\s*\)""")
_INLINE = re.compile(
    r"""(?:sa\.text|exec_driver_sql|\.execute)\(\s*f?["'](?:SELECT|INSERT|UPDATE|DELETE|CREATE|WITH|ANALYZE|SET)""",
    re.I,
)


def named() -> set[tuple[str, str]]:
    return {
        (path.stem, name)
        for path in (SQL_DIR / "queries").glob("*.sql")
        for name in queries(path.stem)
    }


def used() -> set[tuple[str, str]]:
    readers = [*CODE, *(PROJECT / "tests").rglob("*.py"), *(PROJECT / "bench").rglob("*.py")]
    return {match for path in readers for match in _CALL.findall(path.read_text())}


def test_every_named_query_is_used() -> None:
    assert sorted(named() - used()) == []


def test_every_query_the_code_asks_for_exists() -> None:
    assert sorted(used() - named()) == []


def test_no_sql_is_written_inline_in_python() -> None:
    inline = [
        f"{path.relative_to(PROJECT)}:{text[: match.start()].count(chr(10)) + 1}"
        for path in CODE
        for text in [path.read_text()]
        for match in _INLINE.finditer(text)
    ]
    assert inline == []
