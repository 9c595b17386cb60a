"""Bounds on size, latency and cost of a call."""

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.heuristics.text import TextField, field_text
from evaluators.records import LogRecord
from evaluators.registry import registered


@registered
class Length(Evaluator):
    """Checks that a field's length (characters or words) lies within bounds."""

    name: ClassVar[str] = "length"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    field: TextField = "response"
    unit: Literal["chars", "words"] = "chars"
    min: int = Field(default=1, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Length":
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        text = field_text(record, self.field) or ""
        if record.status == "error" and not text:
            return Score.skipped("provider error: nothing to measure")
        size = len(text) if self.unit == "chars" else len(text.split())
        if size < self.min:
            return Score.verdict(False, reason=f"{self.field} has {size} {self.unit} < {self.min}")
        if self.max is not None and size > self.max:
            return Score.verdict(False, reason=f"{self.field} has {size} {self.unit} > {self.max}")
        return Score.verdict(True)


def _ceiling(value: float | None, limit: float, what: str, unit: str) -> Score:
    if value is None:
        return Score.skipped(f"{what} not logged")
    if value > limit:
        return Score.verdict(False, reason=f"{what} {value:g} {unit} > {limit:g} {unit}")
    return Score.verdict(True)


@registered
class LatencySlo(Evaluator):
    """Checks the call's latency against an SLO in milliseconds."""

    name: ClassVar[str] = "latency_slo"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    max_ms: int = Field(default=10_000, gt=0)

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        return _ceiling(record.latency_ms, self.max_ms, "latency", "ms")


@registered
class CostLimit(Evaluator):
    """Checks the call's logged cost against a ceiling in USD."""

    name: ClassVar[str] = "cost_limit"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    max_usd: float = Field(default=0.05, gt=0)

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        return _ceiling(record.cost_usd, self.max_usd, "cost", "USD")
