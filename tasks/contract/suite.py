"""The data contract: a Great Expectations suite run on every batch before anything is evaluated.

Rows are first mapped to canonical fields (keeping whatever types the warehouse gave), checked
by the suite on a pandas frame, and only rows that pass become `LogRecord`s. Failing rows are
quarantined with the expectations they broke and the offending values (truncated, PII masked).
GX is imported lazily (5 s) and runs in an ephemeral context: no files, no network, no bars.

GX's cost is mostly fixed per expectation (building its metric graph), not per row, so the suite
runs once per batch with boolean results, and only the expectations that failed run again to
name the rows.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from evaluators import offline  # noqa: F401  (GX analytics off before GX is imported)
from evaluators.heuristics.pii import mask_pii
from evaluators.records import LogRecord, canonical_fields
from tasks.config import PAYLOAD_SLOTS, QualityConfig
from tasks.config.expectations import build_expectation
from tasks.errors import PayloadError
from tasks.store.rows import Reject
from tasks.store.sanitize import row_problems
from tasks.warehouse.normalize import FORMATS, reasons_of, record_fields, reject

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations import Expectation

MAX_VALUE_CHARS = 120
NUMERIC_FIELDS = ("input_tokens", "output_tokens", "latency_ms", "cost_usd")
NUMBER_SUFFIX = "__number"  # a numeric copy of a field, so range checks see strings as missing
LENGTH_SUFFIX = "__length"  # a text's length in characters (None when it is not text)
DERIVED_SUFFIXES = (NUMBER_SUFFIX, LENGTH_SUFFIX)
#: Large text fields enter the frame as their type name and length, not their content: GX then
#: never copies or scans kilobytes per row, and reasons never echo a prompt's text.
TEXT_FIELDS = ("prompt", "response")
PAYLOAD_PREFIX = "payload_"
#: Expectations where the first occurrence of a value is fine and only repeats are not.
REPEATS_ONLY = frozenset({"expect_column_values_to_be_unique"})


class ContractSummary(BaseModel):
    """What the contract found over one or more batches (stored on the run record)."""

    batches: int = 0
    rows: int = 0
    invalid_rows: int = 0
    expectations_evaluated: int = 0
    expectations_failed: int = 0
    unexpected: dict[str, int] = Field(default_factory=dict)
    batch_failures: list[str] = Field(default_factory=list)

    def __add__(self, other: "ContractSummary") -> "ContractSummary":
        unexpected = Counter(self.unexpected)
        unexpected.update(other.unexpected)
        return ContractSummary(
            batches=self.batches + other.batches,
            rows=self.rows + other.rows,
            invalid_rows=self.invalid_rows + other.invalid_rows,
            expectations_evaluated=self.expectations_evaluated + other.expectations_evaluated,
            expectations_failed=self.expectations_failed + other.expectations_failed,
            unexpected=dict(unexpected.most_common()),
            batch_failures=self.batch_failures + other.batch_failures,
        )


class Admission(BaseModel):
    """One batch after the contract: records to evaluate, rejects to quarantine."""

    records: list[LogRecord]
    rejects: list[Reject]
    summary: ContractSummary


# -- GX plumbing -----------------------------------------------------------------------------------
@cache
def _gx() -> tuple[Any, Any]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("assay").add_dataframe_asset("logs")
    return context, asset.add_batch_definition_whole_dataframe("batch")


_SUITES: dict[str, "ExpectationSuite"] = {}


def _suite(expectations: list["Expectation"]) -> "ExpectationSuite":
    import great_expectations as gx

    key = json.dumps(
        [e.configuration.to_json_dict() for e in expectations], sort_keys=True, default=str
    )
    name = "assay-" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    if name not in _SUITES:
        if len(_SUITES) > 64:
            _SUITES.clear()
        context, _ = _gx()
        copies = [e.copy(deep=True) for e in expectations]  # a suite takes ownership
        _SUITES[name] = context.suites.add(gx.ExpectationSuite(name=name, expectations=copies))
    return _SUITES[name]


def _validate(frame: "pd.DataFrame", expectations: list["Expectation"], fmt: str) -> Any:
    _, batch_definition = _gx()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    return batch.validate(_suite(expectations), result_format={"result_format": fmt})


# -- the suite -------------------------------------------------------------------------------------
def default_expectations(quality: QualityConfig, fmt: str, now: datetime) -> list["Expectation"]:
    """The contract for canonical logs. The window itself needs no check: the keyset query
    only ever returns rows inside it."""
    E = _expectations_module()
    not_error = {"row_condition": 'status!="error"', "condition_parser": "pandas"}
    text_bounds = {"max_value": quality.max_text_chars}
    expectations: list[Expectation] = [
        E.ExpectColumnValuesToNotBeNull(column="id", description="every log has an id"),
        E.ExpectColumnValuesToBeUnique(column="id", description="ids are unique in the batch"),
        E.ExpectColumnValuesToNotBeNull(column="ts", description="every log has a timestamp"),
        E.ExpectColumnValuesToBeBetween(
            column="ts",
            max_value=now + quality.future_skew,
            description=f"timestamp not in the future (beyond {quality.future_skew})",
        ),
        E.ExpectColumnValuesToNotBeNull(column="prompt", description="every log has a prompt"),
        E.ExpectColumnValuesToBeInSet(
            column="prompt", value_set=["str"], description="prompt is text (UTF-8)"
        ),
        E.ExpectColumnValuesToBeBetween(
            column="prompt" + LENGTH_SUFFIX,
            **text_bounds,
            description="prompt within the size limit (characters)",
        ),
        *(
            [
                E.ExpectColumnValuesToNotBeNull(
                    column="response", **not_error, description="a successful call has a response"
                )
            ]
            if quality.empty_response == "quarantine"
            else []
        ),
        E.ExpectColumnValuesToBeInSet(
            column="response", value_set=["str"], description="response is text (UTF-8)"
        ),
        E.ExpectColumnValuesToBeBetween(
            column="response" + LENGTH_SUFFIX,
            min_value=1 if quality.empty_response == "quarantine" else None,
            **text_bounds,
            **not_error,
            description="a successful call's response is non-empty and within the size limit "
            "(characters)"
            if quality.empty_response == "quarantine"
            else "a response within the size limit (characters)",
        ),
        E.ExpectColumnValuesToBeInSet(
            column="status", value_set=["ok", "error"], description="status is ok or error"
        ),
        E.ExpectColumnValuesToBeInSet(
            column="feedback",
            value_set=["positive", "negative", "neutral"],
            description="feedback is positive, negative or neutral",
        ),
    ]
    limits = {
        "input_tokens": quality.max_tokens,
        "output_tokens": quality.max_tokens,
        "latency_ms": quality.max_latency_ms,
        "cost_usd": quality.max_cost_usd,
    }
    for field, ceiling in limits.items():
        integer = field != "cost_usd"
        expectations += [
            E.ExpectColumnValuesToBeInTypeList(
                column=field,
                type_list=["int"] if integer else ["int", "float"],
                description=f"{field} is {'an integer' if integer else 'a number'}",
            ),
            E.ExpectColumnValuesToBeBetween(
                column=field + NUMBER_SUFFIX,
                min_value=0,
                max_value=ceiling,
                description=f"{field} between 0 and {ceiling:,}",
            ),
        ]
    if quality.allowed_models is not None:
        expectations.append(
            E.ExpectColumnValuesToBeInSet(
                column="model", value_set=quality.allowed_models, description="an allowed model"
            )
        )
    for slot in PAYLOAD_SLOTS[fmt]:
        expectations.append(
            E.ExpectColumnValuesToBeJsonParseable(
                column=PAYLOAD_PREFIX + slot, description=f"{slot} payload is valid JSON"
            )
        )
    for spec in quality.expectations:
        expectations.append(build_expectation(spec.type, spec.kwargs, spec.description))
    return expectations


_EXPECTATIONS: dict[str, list["Expectation"]] = {}


def suite_for(quality: QualityConfig, fmt: str, now: datetime) -> list["Expectation"]:
    """The suite for this config, built once per minute: `now` (the future bound) is rounded up
    to the minute, so consecutive batches reuse the same GX suite instead of rebuilding it."""
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    key = f"{quality.model_dump_json()}|{fmt}|{minute.isoformat()}"
    if key not in _EXPECTATIONS:
        if len(_EXPECTATIONS) > 64:
            _EXPECTATIONS.clear()
        _EXPECTATIONS[key] = default_expectations(quality, fmt, minute)
    return _EXPECTATIONS[key]


def _expectations_module() -> Any:
    _gx()
    import great_expectations.expectations as E

    return E


# -- the frame -------------------------------------------------------------------------------------
#: Bulky fields no default expectation reads; they enter the frame only when an extra
#: expectation names them (GX pickles the whole frame to identify each batch).
BULKY_FIELDS = frozenset({"context", "metadata"})


def contract_frame(
    rows: list[dict[str, Any]], fmt: str, wanted: frozenset[str] = frozenset()
) -> tuple["pd.DataFrame", list[dict[str, Any]], dict[int, str]]:
    """Canonical candidate fields per row (types as the warehouse gave them), as a frame.

    Returns the frame, the fields per row, and the payload errors of rows whose payload could
    not be read at all.
    """
    import pandas as pd

    to_fields = FORMATS[fmt]
    fields_per_row: list[dict[str, Any]] = []
    payload_errors: dict[int, str] = {}
    for position, row in enumerate(rows):
        try:
            fields = to_fields(row)
        except (PayloadError, TypeError, ValueError, AttributeError) as exc:
            fields, payload_errors[position] = {}, f"payload unreadable: {exc}"
        fields_per_row.append(record_fields(fields, row))
    # Built column by column from plain lists, as object columns: values keep the types the
    # warehouse gave (a token count stored as text stays a string for the type check).
    columns: dict[str, Any] = {
        field: pd.Series([_hashable(f.get(field)) for f in fields_per_row], dtype=object)
        for field in canonical_fields()
        if field not in BULKY_FIELDS or field in wanted
    }
    for field in NUMERIC_FIELDS:
        numbers = [v if type(v) in (int, float) else None for v in columns[field]]
        columns[field + NUMBER_SUFFIX] = pd.Series(numbers, dtype="float64")
    for field in TEXT_FIELDS:
        values = columns[field]
        # Whitespace is no text: a response of spaces counts as empty.
        columns[field + LENGTH_SUFFIX] = pd.Series(
            [(len(v) if v.strip() else 0) if isinstance(v, str) else None for v in values],
            dtype="float64",
        )
        columns[field] = pd.Series(
            [None if v is None else type(v).__name__ for v in values], dtype=object
        )
    columns["ts"] = pd.to_datetime(columns["ts"], utc=True, errors="coerce")
    frame = pd.DataFrame(columns)
    for slot in PAYLOAD_SLOTS[fmt]:
        frame[PAYLOAD_PREFIX + slot] = [_as_json_text(row.get(slot)) for row in rows]
    return frame, fields_per_row, payload_errors


def _hashable(value: Any) -> Any:
    """Bytes stay bytes (the type check names them) but ASCII: GX hashes the frame through
    pandas, which decodes the bytes of a mixed column as ASCII and would fail the whole batch
    on one binary cell."""
    if isinstance(value, bytes):
        return value.decode("ascii", "backslashreplace").encode("ascii")
    return value


def _as_json_text(value: Any) -> Any:
    """Payload as text for the JSON check: drivers hand back parsed JSON for jsonb columns."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, default=str)


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        text = f"bytes {value[:40]!r}"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = repr(value)
    text = (
        text
        if len(text) <= MAX_VALUE_CHARS
        else text[:MAX_VALUE_CHARS] + f"… ({len(text):,} chars)"
    )
    return mask_pii(text)


def _field(column: str) -> str:
    """The log field a (possibly derived) frame column checks."""
    for suffix in DERIVED_SUFFIXES:
        column = column.removesuffix(suffix)
    return column


def _label(config: Any) -> str:
    column = config.kwargs.get("column")
    if not column:
        return str(config.type)
    kind = config.type
    if column.endswith(LENGTH_SUFFIX):  # a range on a text's length is a length check
        kind = "expect_column_value_lengths_to_be_between"
    return f"{kind}({_field(column)})"


# -- checking a batch ------------------------------------------------------------------------------
def _columns_used(expectations: list["Expectation"]) -> list[str]:
    """Frame columns the suite reads (GX copies and pickles whatever it is given)."""
    used = {"status"}  # row conditions read it
    for e in expectations:
        kwargs = e.configuration.kwargs
        if kwargs.get("column"):
            used.add(kwargs["column"])
        used.update(kwargs.get("column_list") or [])
    return sorted(used)


def check_batch(
    frame: "pd.DataFrame", expectations: list["Expectation"]
) -> tuple[dict[int, list[str]], dict[int, list[str]], ContractSummary]:
    """Reasons and expectation labels per failing row position, and the batch summary."""
    used = [c for c in _columns_used(expectations) if c in frame.columns]
    frame = frame[used]
    first = _validate(frame, expectations, "BOOLEAN_ONLY")
    failed_configs = [r.expectation_config for r in first.results if not r.success]
    summary = ContractSummary(
        batches=1,
        rows=len(frame),
        expectations_evaluated=len(first.results),
        expectations_failed=len(failed_configs),
    )
    reasons: dict[int, list[str]] = {}
    labels: dict[int, list[str]] = {}
    if not failed_configs:
        return reasons, labels, summary
    failed_keys = {_key(config) for config in failed_configs}
    failed = [e for e in expectations if _key(e.configuration) in failed_keys]
    second = _validate(frame, failed, "COMPLETE")
    for result in second.results:
        config = result.expectation_config
        label = _label(config)
        if problem := _exception_message(result.exception_info):
            summary.batch_failures.append(f"{label} could not be checked: {problem}")
            continue
        positions = result.result.get("unexpected_index_list")
        if positions is None:  # a table- or column-level expectation: the batch fails it
            summary.batch_failures.append(f"{label}: {config.description or 'failed'}")
            continue
        positions = [int(p) for p in positions]
        if config.type in REPEATS_ONLY:
            positions = _repeats(frame, config.kwargs["column"], positions)
        column = config.kwargs.get("column") or ""
        for position in positions:
            value = frame.at[position, column] if column in frame.columns else None
            if column.endswith(LENGTH_SUFFIX) and value is not None:
                value = f"{int(value):,} characters"
            elif column.endswith(NUMBER_SUFFIX):
                value = frame.at[position, _field(column)]
            reasons.setdefault(position, []).append(
                f"{label}: {config.description or 'unexpected value'}; got {_shown(value)}"
            )
            labels.setdefault(position, []).append(label)
        summary.unexpected[label] = summary.unexpected.get(label, 0) + len(positions)
    return reasons, labels, summary


def _exception_message(info: Any) -> str | None:
    """GX reports errors flat (`raised_exception`) or per metric; either way, say what broke."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "it raised")
    for value in info.values():
        if isinstance(value, dict) and (
            value.get("raised_exception") or value.get("exception_message")
        ):
            return str(value.get("exception_message") or "it raised")
    return None


def _key(config: Any) -> str:
    """Identity of an expectation across a suite and its results (which add a batch id)."""
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return json.dumps([config.type, kwargs], sort_keys=True, default=str)


def _repeats(frame: "pd.DataFrame", column: str, positions: list[int]) -> list[int]:
    seen: set[Any] = set()
    repeats = []
    for position in sorted(positions):
        value = frame.at[position, column]
        if value in seen:
            repeats.append(position)
        seen.add(value)
    return repeats


def admit(
    rows: list[dict[str, Any]],
    fmt: str,
    quality: QualityConfig,
    now: datetime | None = None,
    contract: bool = True,
) -> Admission:
    """Check a batch against the contract; valid rows become records, the rest rejects.

    `contract=False` keeps the row-level checks (readable payload, types, sizes) but skips the
    expectation suite and GX's import (3 s): `assay estimate` uses it for a fast upper bound."""
    if not rows:
        return Admission(records=[], rejects=[], summary=ContractSummary())
    now = now or datetime.now(UTC)
    wanted = frozenset(str(spec.kwargs.get("column")) for spec in quality.expectations)
    frame, fields_per_row, payload_errors = contract_frame(rows, fmt, wanted)
    if contract:
        reasons, labels, summary = check_batch(frame, suite_for(quality, fmt, now))
    else:
        reasons, labels, summary = {}, {}, ContractSummary(batches=1, rows=len(frame))
    records: list[LogRecord] = []
    rejects: list[Reject] = []
    for position, (row, fields) in enumerate(zip(rows, fields_per_row, strict=True)):
        broken = row_problems(fields) + _missing_status(row, fmt) + reasons.get(position, [])
        if position in payload_errors:
            broken = [payload_errors[position], *broken]
        if broken:
            rejects.append(
                reject(row, broken, "validate", labels.get(position, ["payload_readable"]))
            )
            continue
        try:
            records.append(LogRecord.model_validate(fields))
        except ValidationError as exc:  # the last type gate: what the suite does not cover
            rejects.append(reject(row, reasons_of(exc)))
    summary.invalid_rows = len(rejects)
    return Admission(records=records, rejects=rejects, summary=summary)


def _missing_status(row: Mapping[str, Any], fmt: str) -> list[str]:
    """A mapped status column that is NULL says nothing about whether the call succeeded."""
    if fmt == "canonical" and "status" in row and row["status"] is None:
        return [
            "status: NULL, so it is unknown whether the call succeeded (fix the source, or drop "
            "the field with `status: null` under source.columns to treat every log as ok)"
        ]
    return []


def future_start(quality: QualityConfig, now: datetime) -> datetime:
    """Logs after this are in the future beyond the allowed skew."""
    return now + quality.future_skew + timedelta(microseconds=1)
