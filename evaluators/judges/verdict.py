"""The structured verdict every judge must return, parsed strictly: never a guessed score."""

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluators.errors import DuplicateKey, VerdictUnparseable, describe_validation_error

FENCE = "```"


class Verdict(BaseModel):
    """What the judge model must answer, as JSON."""

    model_config = ConfigDict(extra="ignore", strict=True)

    score: float = Field(ge=0.0, le=1.0, description="0 = fails the criterion, 1 = fully meets it")
    passed: bool
    label: str | None = Field(default=None, max_length=100)
    reason: str = Field(min_length=1, max_length=2000)


def _strict_schema() -> dict[str, object]:
    """The verdict's JSON schema, from the model itself, in the strict form providers require
    (every property required, nothing else allowed)."""
    schema = Verdict.model_json_schema()
    properties = {
        name: {k: v for k, v in spec.items() if k in ("type", "anyOf", "minimum", "maximum")}
        for name, spec in schema["properties"].items()
    }
    label = properties["label"]
    if "anyOf" in label:  # `str | None`: the strict form is a list of types
        properties["label"] = {"type": [option["type"] for option in label["anyOf"]]}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


#: JSON schema sent as `response_format` to providers that support structured output.
RESPONSE_FORMAT: dict[str, object] = {
    "type": "json_schema",
    "json_schema": {"name": "verdict", "strict": True, "schema": _strict_schema()},
}


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:  # one pass: a set lookup per key
        if key in found:
            raise DuplicateKey(f"key {key} appears more than once")
        found[key] = value
    return found


def unfenced(text: str) -> str:
    """The text inside one Markdown code fence (```json ... ```), else the text: plain string
    operations, linear in the reply (a regex here backtracked on runaway whitespace)."""
    body = text.strip()
    if len(body) >= 2 * len(FENCE) and body.startswith(FENCE) and body.endswith(FENCE):
        inner = body[len(FENCE) : -len(FENCE)]
        return inner.removeprefix("json").strip()
    return body


def parse_verdict(text: str | None) -> Verdict:
    """Parse a verdict; a Markdown code fence around the JSON is the only leniency allowed."""
    if not text or not text.strip():
        raise VerdictUnparseable("the judge returned no text", text or "")
    body = unfenced(text)
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise VerdictUnparseable(f"not JSON ({exc.msg} at char {exc.pos})", text) from None
    except DuplicateKey as exc:  # which one would count is a guess: never guess a score
        raise VerdictUnparseable(f"ambiguous verdict: {exc}", text) from None
    if not isinstance(data, dict):
        raise VerdictUnparseable("the verdict must be a JSON object", text)
    try:
        return Verdict.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise VerdictUnparseable(f"invalid verdict: {problems}", text) from None


REPAIR_INSTRUCTION = (
    "Your previous answer was not a valid verdict ({problem}). Answer again with only one JSON "
    'object of the form {{"score": <number 0..1>, "passed": <true|false>, "label": <string or '
    'null>, "reason": "<one or two sentences>"}} and nothing else.'
)
