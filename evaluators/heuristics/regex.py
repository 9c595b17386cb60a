"""A user-supplied regular expression that must (or must not) match.

The pattern comes from a job config, so it may be catastrophic (`^(a+)+$` on a long line). It runs
on the `regex` library with a per-record time limit: a pattern that exceeds it gives that log an
`error` score, and the run goes on.
"""

from typing import ClassVar

import regex
from pydantic import Field, field_validator

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.heuristics.text import TextField, field_text
from evaluators.records import LogRecord
from evaluators.registry import registered


@registered
class Regex(Evaluator):
    """Passes when `pattern` matches the field (or, with `must_match: false`, when it does not)."""

    name: ClassVar[str] = "regex"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    pattern: str = Field(description="Python regular expression, searched anywhere in the text.")
    field: TextField = "response"
    must_match: bool = True
    ignore_case: bool = False
    timeout_s: float = Field(
        default=0.1, gt=0, le=5, description="Longest a search may take on one log."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if len(value) > 2000:
            raise ValueError("pattern is longer than 2,000 characters")
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
        return value

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        text = field_text(record, self.field)
        if text is None:
            return Score.skipped(f"no {self.field}")
        flags = regex.IGNORECASE if self.ignore_case else 0
        try:
            matched = regex.search(self.pattern, text, flags, timeout=self.timeout_s) is not None
        except TimeoutError:
            return Score.error(
                f"pattern took longer than {self.timeout_s:g} s on this {self.field}; "
                "simplify it (nested quantifiers such as (a+)+ backtrack exponentially)"
            )
        if matched == self.must_match:
            return Score.verdict(True)
        expectation = "did not match" if self.must_match else "matched"
        return Score.verdict(False, reason=f"{self.field} {expectation} /{self.pattern}/")
