"""The structured verdict every judge must return, parsed strictly: never a guessed score."""

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_RAW_CHARS = 500
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class Verdict(BaseModel):
    """What the judge model must answer, as JSON."""

    model_config = ConfigDict(extra="ignore", strict=True)

    score: float = Field(ge=0.0, le=1.0, description="0 = fails the criterion, 1 = fully meets it")
    passed: bool
    label: str | None = Field(default=None, max_length=100)
    reason: str = Field(min_length=1, max_length=2000)


class VerdictUnparseable(ValueError):
    """The judge's answer is not a valid verdict; `raw` keeps (a truncated copy of) what it said."""

    def __init__(self, problem: str, raw: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.raw = raw[:MAX_RAW_CHARS]


#: JSON schema sent as `response_format` to providers that support structured output.
RESPONSE_FORMAT: dict[str, object] = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "passed": {"type": "boolean"},
                "label": {"type": ["string", "null"]},
                "reason": {"type": "string"},
            },
            "required": ["score", "passed", "label", "reason"],
            "additionalProperties": False,
        },
    },
}


def parse_verdict(text: str | None) -> Verdict:
    """Parse a verdict; a Markdown code fence around the JSON is the only leniency allowed."""
    if not text or not text.strip():
        raise VerdictUnparseable("the judge returned no text", text or "")
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise VerdictUnparseable(f"not JSON ({exc.msg} at char {exc.pos})", text) from None
    if not isinstance(data, dict):
        raise VerdictUnparseable("the verdict must be a JSON object", text)
    try:
        return Verdict.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise VerdictUnparseable(f"invalid verdict: {problems}", text) from None


REPAIR_INSTRUCTION = (
    "Your previous answer was not a valid verdict ({problem}). Answer again with only one JSON "
    'object of the form {{"score": <number 0..1>, "passed": <true|false>, "label": <string or '
    'null>, "reason": "<one or two sentences>"}} and nothing else.'
)
