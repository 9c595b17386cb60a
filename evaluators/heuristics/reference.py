"""Reference-based checks: the response against the expected answer of a dataset item.

The expected answer travels as `metadata.reference` (where the `correctness` judge reads it too).
A record without one is `skipped` (it does not apply), never failed.
"""

import json
import math
import re
import unicodedata
from typing import Any, ClassVar

from pydantic import Field

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.records import LogRecord
from evaluators.registry import registered

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_PUNCTUATION = re.compile(r"[^\w\s]")


def expected_of(record: LogRecord) -> str | None:
    value = record.metadata.get("reference")
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def normalized(text: str, case_sensitive: bool, punctuation: bool) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not punctuation:
        text = _PUNCTUATION.sub(" ", text)
    text = " ".join(text.split())
    return text if case_sensitive else text.casefold()


class ReferenceEvaluator(Evaluator):
    """Shared: skip without an expected answer (or without a response)."""

    cost: ClassVar[Cost] = Cost.FREE

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        expected = expected_of(record)
        if expected is None:
            return Score.skipped("no expected answer (metadata.reference) for this item")
        if record.response is None:
            return Score.verdict(False, reason="no response")
        return self.compare(record.response, expected)

    def compare(self, response: str, expected: str) -> Score:
        raise NotImplementedError


@registered
class ExactMatch(ReferenceEvaluator):
    """Passes when the response equals the expected answer (whitespace, Unicode form and, by
    default, case and punctuation normalized)."""

    name: ClassVar[str] = "exact_match"
    version: ClassVar[str] = "1"

    case_sensitive: bool = False
    punctuation: bool = Field(default=False, description="Compare punctuation too.")

    def compare(self, response: str, expected: str) -> Score:
        same = normalized(response, self.case_sensitive, self.punctuation) == normalized(
            expected, self.case_sensitive, self.punctuation
        )
        return Score.verdict(same, reason=None if same else "differs from the expected answer")


@registered
class ContainsExpected(ReferenceEvaluator):
    """Passes when the expected answer appears in the response (normalized like exact_match)."""

    name: ClassVar[str] = "contains_expected"
    version: ClassVar[str] = "1"

    case_sensitive: bool = False
    punctuation: bool = False

    def compare(self, response: str, expected: str) -> Score:
        needle = normalized(expected, self.case_sensitive, self.punctuation)
        found = needle in normalized(response, self.case_sensitive, self.punctuation)
        return Score.verdict(found, reason=None if found else "expected answer not found")


@registered
class JsonEqual(ReferenceEvaluator):
    """Passes when the response parses as JSON equal to the expected JSON (key order ignored;
    numbers compared as numbers)."""

    name: ClassVar[str] = "json_equal"
    version: ClassVar[str] = "1"

    def compare(self, response: str, expected: str) -> Score:
        try:
            want = json.loads(expected)
        except ValueError:
            return Score.error("the expected answer is not JSON")
        try:
            got = json.loads(response)
        except json.JSONDecodeError as exc:
            return Score.verdict(False, reason=f"response is not JSON ({exc.msg})")
        same = _canonical(got) == _canonical(want)
        return Score.verdict(same, reason=None if same else "JSON differs from the expected")


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return float(value)


@registered
class NumericClose(ReferenceEvaluator):
    """Passes when the number in the response (the last one, by default) is within a relative
    or absolute tolerance of the expected number."""

    name: ClassVar[str] = "numeric_close"
    version: ClassVar[str] = "1"

    rel_tol: float = Field(default=1e-6, ge=0, le=1)
    abs_tol: float = Field(default=0.0, ge=0, le=1e12)
    which: str = Field(default="last", pattern="^(first|last)$")

    def compare(self, response: str, expected: str) -> Score:
        want = _numbers(expected)
        if not want:
            return Score.error("the expected answer holds no number")
        got = _numbers(response)
        if not got:
            return Score.verdict(False, reason="no number in the response")
        value = got[0] if self.which == "first" else got[-1]
        close = math.isclose(value, want[-1], rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        reason = None if close else f"{value:g} is not within tolerance of {want[-1]:g}"
        return Score(score=1.0 if close else 0.0, passed=close, reason=reason)


def _numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text[:100_000])]
