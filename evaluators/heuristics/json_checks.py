"""Structured-output checks: the response parses as JSON, and optionally fits a schema."""

import json
import re
from typing import Any, ClassVar

import jsonschema
from pydantic import Field, field_validator

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.records import LogRecord
from evaluators.registry import registered

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


class _JsonEvaluator(Evaluator):
    prompt_slugs: tuple[str, ...] = Field(
        default=(), description="Only check logs of these prompt slugs (empty: every log)."
    )
    allow_code_fence: bool = Field(
        default=True, description="Accept JSON wrapped in a ```json fence."
    )

    def _parse(self, record: LogRecord) -> tuple[Any, Score | None]:
        if self.prompt_slugs and record.prompt_slug not in self.prompt_slugs:
            return None, Score.skipped("prompt is not a JSON-mode prompt")
        if not record.response:
            return None, Score.skipped("no response")
        text = record.response
        fenced = _FENCE.match(text) if self.allow_code_fence else None
        if fenced:
            text = fenced.group(1)
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            return None, Score.verdict(False, reason=f"invalid JSON: {exc.msg} at char {exc.pos}")


@registered
class JsonValid(_JsonEvaluator):
    """Checks that the response is valid JSON."""

    name: ClassVar[str] = "json_valid"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        _, failure = self._parse(record)
        return failure or Score.verdict(True)


@registered
class JsonSchema(_JsonEvaluator):
    """Checks that the response is JSON matching a JSON Schema given in params."""

    name: ClassVar[str] = "json_schema"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema document.")

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        validator = jsonschema.validators.validator_for(value)
        try:
            validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        document, failure = self._parse(record)
        if failure:
            return failure
        validator_cls = jsonschema.validators.validator_for(self.json_schema)
        error = jsonschema.exceptions.best_match(
            validator_cls(self.json_schema).iter_errors(document)
        )
        if error is None:
            return Score.verdict(True)
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Score.verdict(False, reason=f"schema violation at {path}: {error.message[:200]}")
