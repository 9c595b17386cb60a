"""Dataset items and the files they come from (JSONL or CSV). Pure: no database.

A file line becomes an item or a rejection with its line number and reason; one bad line never
stops the others. Fields the format does not name are kept in `metadata`, not rejected.
"""

import codecs
import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evaluators.errors import describe_validation_error

ITEM_FIELDS = ("id", "input", "context", "expected", "tags", "metadata")
MAX_LINE_CHARS = 1_000_000
FileFormat = Literal["jsonl", "csv"]


class DatasetItem(BaseModel):
    """One golden example: an input, optional retrieved context and the expected answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    input: str = Field(min_length=1, max_length=MAX_LINE_CHARS)
    context: list[str] = Field(default_factory=list)
    expected: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source_deployment: str | None = None
    source_log_id: str | None = None

    @field_validator("id", "input", "expected")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains a NUL character, which Postgres cannot store")
        return value

    def content_hash(self) -> str:
        """What makes two revisions of an item the same: everything but where it came from."""
        body = json.dumps(
            [self.input, self.context, self.expected, sorted(self.tags), self.metadata],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(body.encode()).hexdigest()


def default_id(fields: dict[str, Any]) -> str:
    """An item without an id is named by its content (so importing it twice adds it once)."""
    body = json.dumps([fields.get("input"), fields.get("context"), fields.get("expected")],
                      sort_keys=True, default=str)  # fmt: skip
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:16]


class Rejected(BaseModel):
    line: int
    reason: str


def digest(items: Iterable[tuple[str, str]]) -> str:
    """The dataset's content digest from (item id, content hash) pairs, in any order."""
    hasher = hashlib.sha256()
    for item_id, content in sorted(items):
        hasher.update(f"{item_id}\x00{content}\n".encode())
    return hasher.hexdigest()[:16]


def _as_list(value: Any, what: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # CSV: a JSON array in a cell, or one plain string
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        value = parsed
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, str):
        return [value]
    raise ValueError(f"{what} must be a list of strings (a JSON array)")


def item_from(fields: dict[str, Any], mapping: dict[str, str]) -> DatasetItem:
    """A raw record (JSON object or CSV row) through the column mapping into an item."""
    renamed = dict(fields)
    for field, column in mapping.items():
        if column in renamed:
            renamed[field] = renamed.pop(column)
    extra = {k: v for k, v in renamed.items() if k not in ITEM_FIELDS}
    metadata = renamed.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata must be a JSON object")
    expected = renamed.get("expected")
    if expected is not None and not isinstance(expected, str):
        expected = json.dumps(expected)  # a structured answer is kept as its JSON text
    input_value = renamed.get("input")
    if input_value is not None and not isinstance(input_value, str):
        raise ValueError("input must be text")
    item_id = renamed.get("id")
    values = {
        "input": input_value,
        "context": _as_list(renamed.get("context"), "context"),
        "expected": expected if expected != "" else None,
        "tags": _as_list(renamed.get("tags"), "tags"),
        "metadata": {**metadata, **extra},
    }
    values["id"] = str(item_id) if item_id not in (None, "") else default_id(values)
    return DatasetItem.model_validate(values)


#: The longest CSV cell read; a longer one rejects its row alone (csv raises, the reader goes on).
MAX_CELL_CHARS = MAX_LINE_CHARS


def file_lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, problem) per line, read in binary with a bounded readline: a line is
    measured before it is held, a UTF-8 BOM (Excel's "CSV UTF-8") is accepted, and a line that
    is not UTF-8 is refused with its number instead of being stored as replacement characters."""
    limit = MAX_LINE_CHARS * 4 + 1  # bytes: a character is at most four
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(limit):
            number += 1
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if len(raw) >= limit and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest, never holding it
                    raw = handle.readline(1 << 20)
                yield number, None, f"line longer than {MAX_LINE_CHARS:,} characters"
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    None,
                    (f"not UTF-8 (byte {exc.start + 1} of the line): save the file as UTF-8"),
                )
                continue
            if len(text) > MAX_LINE_CHARS:
                yield number, None, f"line longer than {MAX_LINE_CHARS:,} characters"
                continue
            yield number, text, None


def _json_record(line: str) -> dict[str, Any] | str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:  # a line nested deeper than the parser's stack
        return "JSON nested too deeply"
    return record if isinstance(record, dict) else "not a JSON object"


def file_records(path: Path, fmt: FileFormat) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) or (line number, why it is unreadable), streamed: one bad line
    (too long, not UTF-8, deep JSON, an oversize cell) is rejected alone and the rest go on."""
    if fmt == "jsonl":
        for number, line, problem in file_lines(path):
            if problem is not None:
                yield number, problem
            elif line is not None and line.strip():
                yield number, _json_record(line)
        return
    yield from _csv_records(path)


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    bad: list[tuple[int, str]] = []

    def good_lines() -> Iterator[str]:
        for number, line, problem in file_lines(path):
            if problem is not None:
                bad.append((number, problem))
                yield "\n"  # a blank line: the CSV reader skips it, the number is kept
            else:
                yield line or "\n"

    previous = csv.field_size_limit(MAX_CELL_CHARS)
    try:
        reader = csv.reader(good_lines())
        header: list[str] | None = None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield reader.line_num, f"unreadable CSV row ({exc})"
                continue
            while bad:
                yield bad.pop(0)
            if not row:
                continue
            if header is None:
                header = row
                continue
            if len(row) > len(header):
                yield reader.line_num, "more cells than the header has columns"
                continue
            values = [unescape_cell(v) for v in row] + [None] * (len(header) - len(row))
            yield reader.line_num, dict(zip(header, values, strict=True))
        while bad:
            yield bad.pop(0)
    finally:
        csv.field_size_limit(previous)


#: What a spreadsheet reads as a formula at the start of a cell (OWASP's CSV-injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text that starts like a formula (or like an
    escaped one) gets a leading `'`. Numbers and empty cells stay as they are."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The inverse of `escape_cell`, so an export imports back unchanged."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def read_items(
    path: Path, mapping: dict[str, str] | None = None, fmt: FileFormat | None = None
) -> tuple[list[DatasetItem], list[Rejected]]:
    """Every item a file holds, and every line that is not one, with its reason."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    items: list[DatasetItem] = []
    rejected: list[Rejected] = []
    seen: dict[str, int] = {}
    for number, record in file_records(path, fmt):
        if isinstance(record, str):
            rejected.append(Rejected(line=number, reason=record))
            continue
        try:
            item = item_from(record, mapping or {})
        except ValidationError as exc:
            rejected.append(Rejected(line=number, reason=describe_validation_error(exc)))
            continue
        except ValueError as exc:
            rejected.append(Rejected(line=number, reason=str(exc)))
            continue
        if item.id in seen:
            rejected.append(
                Rejected(line=number, reason=f"id {item.id!r} repeats line {seen[item.id]}")
            )
            continue
        seen[item.id] = number
        items.append(item)
    return items, rejected
