"""What Postgres, JSON and the encoder can store: checks for rows, bounded copies for quarantine.

A warehouse row can hold things no later step can write: NaN or Infinity (not JSON), NUL
characters (not in Postgres text or jsonb), unpaired surrogates (not UTF-8), JSON nested thousands
deep (past every parser's recursion limit), ids longer than an index entry. One such row must cost
one quarantine entry, never the page: `row_problems` names what is wrong per row at normalisation,
and `storable` makes a bounded, valid copy of anything for the quarantine and the score reasons.
"""

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

MAX_DEPTH = 32
MAX_ID_CHARS = 200
MAX_STORED_CHARS = 2000
MAX_STORED_ITEMS = 100


class UnreadableJson:
    """A JSON value the driver could not parse (e.g. nested past the recursion limit)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<unreadable JSON: {self.reason}>"


def tolerant_json_loads(data: str | bytes) -> Any:
    """The driver's JSON loader: a document Python cannot parse becomes a marker, not an error
    that stops the whole page."""
    try:
        return json.loads(data)
    except RecursionError:
        return UnreadableJson(
            f"nested deeper than Python's JSON parser allows ({len(data):,} bytes)"
        )
    except ValueError as exc:
        return UnreadableJson(str(exc)[:200])


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which Postgres cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (not valid Unicode)"
    return None


def value_problem(value: Any, depth: int = 0) -> str | None:
    """Why `value` cannot be stored as text or jsonb, or None when it can."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value!r}, not a finite number"
    if isinstance(value, Decimal):
        return None if value.is_finite() else f"is {value}, not a finite number"
    if isinstance(value, UnreadableJson):
        return f"is JSON that cannot be read: {value.reason}"
    if isinstance(value, Mapping | list | tuple):
        if depth >= MAX_DEPTH:
            return f"is nested deeper than {MAX_DEPTH} levels"
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (problem := text_problem(key)):
                return f"has a key that {problem}"
            if problem := value_problem(item, depth + 1):
                return problem
    return None


_PLAIN_TYPES = (type(None), int, bool, datetime, date)


def row_problems(fields: Mapping[str, Any]) -> list[str]:
    """A reason per canonical field that could not be stored or evaluated.

    Runs on every row, so the common cases are settled inline: ASCII text without NUL, and
    values that cannot hold anything unstorable."""
    problems = []
    for name, value in fields.items():
        kind = type(value)
        if kind is str:
            if "\x00" not in value and value.isascii():
                continue
        elif kind is float:
            if math.isfinite(value):
                continue
        elif kind is list:
            if all(type(v) is str and "\x00" not in v and v.isascii() for v in value):
                continue
        elif isinstance(value, _PLAIN_TYPES):
            continue
        if (problem := value_problem(value)) is not None:
            problems.append(f"{name}: {problem}")
    log_id = fields.get("id")
    if isinstance(log_id, str) and len(log_id) > MAX_ID_CHARS:
        problems.append(f"id: {len(log_id):,} characters, longer than {MAX_ID_CHARS}")
    return problems


def storable_text(text: str, limit: int = MAX_STORED_CHARS) -> str:
    """`text` without NULs or unpaired surrogates, at most `limit` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "\\0")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def storable(
    value: Any,
    depth: int = 0,
    limit: int = MAX_STORED_CHARS,
    max_items: int = MAX_STORED_ITEMS,
    max_depth: int = 8,
) -> Any:
    """A JSON-safe, bounded copy of `value` (the quarantine's raw column, run details)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, str):
        return storable_text(value, limit)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return storable_text(repr(bytes(value)[:limit]), limit)
    if isinstance(value, Mapping | list | tuple):
        if depth >= max_depth:
            return f"({type(value).__name__} nested deeper than {max_depth} levels, not kept)"
        inner = (depth + 1, limit, max_items, max_depth)
        if isinstance(value, Mapping):
            pairs = list(value.items())[:max_items]
            return {storable_text(str(k), 200): storable(v, *inner) for k, v in pairs}
        return [storable(v, *inner) for v in list(value)[:max_items]]
    return storable_text(repr(value), limit)


def storage_key(log_id: Any) -> str:
    """The quarantine key of a log id: itself, or a digest when it is too long to index."""
    text = storable_text(str(log_id), 10**9)
    if len(text) <= MAX_ID_CHARS:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{text[:40]}…sha256:{digest}"
