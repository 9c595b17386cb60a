"""A user-supplied regular expression that must (or must not) match."""

import re
from typing import ClassVar

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

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
        return value

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        text = field_text(record, self.field)
        if text is None:
            return Score.skipped(f"no {self.field}")
        flags = re.IGNORECASE if self.ignore_case else 0
        matched = re.search(self.pattern, text, flags) is not None
        if matched == self.must_match:
            return Score.verdict(True)
        expectation = "did not match" if self.must_match else "matched"
        return Score.verdict(False, reason=f"{self.field} {expectation} /{self.pattern}/")
