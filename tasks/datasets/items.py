"""Dataset items and the files they come from (JSONL or CSV). Pure: no database.

A file line becomes an item or a rejection with its line number and reason; one bad line never
stops the others. Fields the format does not name are kept in `metadata`, not rejected.
"""

import csv
import hashlib
import io
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


def file_records(path: Path, fmt: FileFormat) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) or (line number, why it is unreadable)."""
    if fmt == "jsonl":
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if len(line) > MAX_LINE_CHARS:
                    yield number, f"line longer than {MAX_LINE_CHARS:,} characters"
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not JSON ({exc.msg} at column {exc.colno})"
                    continue
                yield number, record if isinstance(record, dict) else "not a JSON object"
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        number = reader.line_num
        if None in row:
            yield number, "more cells than the header has columns"
            continue
        yield number, {k: v for k, v in row.items() if k is not None}


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
