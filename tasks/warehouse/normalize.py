"""Map source rows (slot -> value) onto canonical `LogRecord`s, one payload format at a time.

Each `from_*` function takes the row as read and returns the canonical fields it could find;
`normalize_rows` validates them and sends what fails to quarantine with the reason.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from evaluators.errors import validation_problems
from evaluators.records import LogRecord, StepKind, canonical_fields
from tasks.errors import PayloadError
from tasks.redact import redact
from tasks.store.rows import Reject
from tasks.store.sanitize import (
    UnreadableJson,
    row_problems,
    storable,
    storable_text,
    storage_key,
)

Row = Mapping[str, Any]
_CANONICAL = frozenset(canonical_fields())


def _json(value: Any, slot: str) -> Any:
    if value is None:
        raise PayloadError(f"{slot} is null")
    if isinstance(value, UnreadableJson):
        raise PayloadError(f"{slot} is JSON that cannot be read: {value.reason}")
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"{slot} is not valid JSON: {exc.msg} at char {exc.pos}") from None
    return value


def _text_content(content: Any) -> str:
    """OpenAI/Anthropic content: a string or a list of typed parts; keep the text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") if isinstance(part, dict) else str(part)
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        )
    raise PayloadError(f"unsupported content of type {type(content).__name__}")


def _passthrough(row: Row, skip: Iterable[str]) -> dict[str, Any]:
    """Canonical columns mapped beside the payload (customer_id, latency_ms, ...)."""
    skipped = set(skip)
    return {k: v for k, v in row.items() if k in _CANONICAL and k not in skipped and v is not None}


def _utf8(value: Any) -> Any:
    """Text stored as bytes (bytea) is accepted when it is valid UTF-8; otherwise the bytes stay
    as they are and the contract reports them as not text."""
    if isinstance(value, bytes | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def from_canonical(row: Row) -> dict[str, Any]:
    fields = {k: _utf8(v) for k, v in row.items() if v is not None}
    for slot in ("context", "metadata"):
        if isinstance(fields.get(slot), str):
            fields[slot] = _json(fields[slot], slot)
    return fields


def _messages(request: Any) -> list[dict[str, Any]]:
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        raise PayloadError("request has no `messages` list")
    return [m for m in request["messages"] if isinstance(m, dict)]


def _chat_request(
    row: Row, provider: str
) -> tuple[dict[str, Any], Any, list[dict[str, Any]], dict[str, Any]]:
    """What chat formats share: parsed request and response, messages, the user prompt."""
    request, response = _json(row.get("request"), "request"), _json(row.get("response"), "response")
    messages = _messages(request)
    fields = _passthrough(row, ("request", "response"))
    fields["prompt"] = "\n\n".join(
        _text_content(m.get("content")) for m in messages if m.get("role") == "user"
    )
    fields["model"] = (isinstance(response, dict) and response.get("model")) or request.get("model")
    fields.setdefault("provider", provider)
    fields.setdefault("metadata", {})
    return request, response, messages, fields


def from_openai_chat(row: Row) -> dict[str, Any]:
    _, response, messages, fields = _chat_request(row, "openai")
    fields["context"] = [
        _text_content(m.get("content")) for m in messages if m.get("role") == "tool"
    ]
    system = [_text_content(m.get("content")) for m in messages if m.get("role") == "system"]
    if system:
        fields["metadata"] = {**fields["metadata"], "system": "\n\n".join(system)}
    if isinstance(response, dict) and "error" in response:
        fields["status"] = "error"
        fields["metadata"] = {**fields["metadata"], "error": str(response["error"])[:500]}
        return fields
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict) or "message" not in choices[0]:
        raise PayloadError("response has no choices[0].message")
    message = choices[0]["message"]
    calls = _tool_calls([*messages, message]) if isinstance(message, dict) else []
    for call in calls[len(_tool_calls(messages)) :]:
        call["pending"] = True  # asked for by this answer: its result comes in a later call
    if calls:
        fields["metadata"] = {**fields["metadata"], "tool_calls": calls}
    fields["response"] = _text_content(message.get("content")) or "".join(
        f"[calls {c['name']}({c['arguments']})]" for c in calls if c.get("result") is None
    )
    usage = response.get("usage") or {}
    fields["input_tokens"] = usage.get("prompt_tokens")
    fields["output_tokens"] = usage.get("completion_tokens")
    return fields


#: Tool calls kept per log (an agent loop's history repeats them; a trace keeps one of each).
MAX_TOOL_CALLS = 50


def _tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls an OpenAI chat history carries: each assistant `tool_calls` entry with its
    name and arguments, and the `tool` message answering it (by `tool_call_id`), if any."""
    results = {
        str(m.get("tool_call_id")): _text_content(m.get("content"))[:2000]
        for m in messages
        if m.get("role") == "tool" and m.get("tool_call_id") is not None
    }
    calls: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") != "assistant" or not isinstance(message.get("tool_calls"), list):
            continue
        for call in message["tool_calls"]:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            call_id = str(call.get("id") or f"call-{len(calls)}")
            arguments = function.get("arguments")
            calls.append({
                "id": call_id[:200], "name": str(function.get("name"))[:200],
                "arguments": (arguments if isinstance(arguments, str)
                              else json.dumps(arguments))[:2000],
                "result": results.get(call_id),
            })  # fmt: skip
    return calls[:MAX_TOOL_CALLS]


def from_anthropic_messages(row: Row) -> dict[str, Any]:
    request, response, _, fields = _chat_request(row, "anthropic")
    if request.get("system"):
        fields["metadata"] = {**fields["metadata"], "system": _text_content(request["system"])}
    if isinstance(response, dict) and response.get("type") == "error":
        fields["status"] = "error"
        fields["metadata"] = {**fields["metadata"], "error": str(response.get("error"))[:500]}
        return fields
    if not isinstance(response, dict) or not isinstance(response.get("content"), list):
        raise PayloadError("response has no `content` list")
    fields["response"] = _text_content(response["content"])
    usage = response.get("usage") or {}
    fields["input_tokens"] = usage.get("input_tokens")
    fields["output_tokens"] = usage.get("output_tokens")
    return fields


def _otel_messages(attributes: dict[str, Any], new_key: str, legacy_key: str) -> str | None:
    """Content from `gen_ai.input/output.messages`, legacy `gen_ai.prompt`/`completion`,
    or the flattened `gen_ai.prompt.N.content` attributes."""
    if new_key in attributes:
        messages = _json(attributes[new_key], new_key)
        if not isinstance(messages, list):
            raise PayloadError(f"{new_key} is not a list")
        return "\n\n".join(
            str(part.get("content", ""))
            for message in messages
            if isinstance(message, dict) and message.get("role") != "system"
            for part in message.get("parts", [])
            if isinstance(part, dict) and part.get("type") == "text"
        )
    if legacy_key in attributes:
        value = attributes[legacy_key]
        return value if isinstance(value, str) else json.dumps(value)
    flattened = sorted(
        (int(k.split(".")[2]), v)
        for k, v in attributes.items()
        if k.startswith(legacy_key + ".") and k.endswith(".content") and k.split(".")[2].isdigit()
    )
    return "\n\n".join(str(v) for _, v in flattened) if flattened else None


#: `gen_ai.operation.name` values and the step kind they are (absent: an LLM call).
OPERATION_KINDS: dict[str, StepKind] = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "llm",
    "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent",
    "retrieval": "retrieval", "retrieve": "retrieval",
}  # fmt: skip


def _attribute_text(attributes: dict[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _otel_step(attributes: dict[str, Any], kind: StepKind, fields: dict[str, Any]) -> None:
    """A tool, retrieval or agent span: a step of its trace, not an LLM call. Its input and
    output become prompt and response (the trace's transcript reads them), its name metadata."""
    if kind == "tool":
        name = attributes.get("gen_ai.tool.name")
        given = _attribute_text(attributes, "gen_ai.tool.call.arguments")
        result = _attribute_text(attributes, "gen_ai.tool.call.result")
    else:
        name = attributes.get("gen_ai.agent.name") or attributes.get("gen_ai.data_source.id")
        given = _otel_messages(attributes, "gen_ai.input.messages", "gen_ai.prompt")
        result = _otel_messages(attributes, "gen_ai.output.messages", "gen_ai.completion")
    fields["prompt"] = given or ""
    fields["response"] = result
    if name is not None:
        fields["metadata"] = {**fields.get("metadata", {}), "step_name": str(name)[:200]}


def from_otel_genai(row: Row) -> dict[str, Any]:
    attributes = _json(row.get("attributes"), "attributes")
    if not isinstance(attributes, dict):
        raise PayloadError("attributes is not an object")
    fields = _passthrough(row, ("attributes",))
    operation = str(attributes.get("gen_ai.operation.name", "chat"))
    kind = OPERATION_KINDS.get(operation, "other")
    fields.setdefault("step_kind", kind)
    fields["model"] = attributes.get("gen_ai.response.model") or attributes.get(
        "gen_ai.request.model"
    )
    fields["provider"] = attributes.get("gen_ai.provider.name") or attributes.get("gen_ai.system")
    fields["input_tokens"] = attributes.get("gen_ai.usage.input_tokens")
    fields["output_tokens"] = attributes.get("gen_ai.usage.output_tokens")
    if kind == "llm":
        prompt = _otel_messages(attributes, "gen_ai.input.messages", "gen_ai.prompt")
        if prompt is None:
            raise PayloadError("no prompt content in the span attributes")
        fields["prompt"] = prompt
        fields["response"] = _otel_messages(
            attributes, "gen_ai.output.messages", "gen_ai.completion"
        )
    else:
        _otel_step(attributes, kind, fields)
    error = attributes.get("error.type") or (
        row.get("status_message") if row.get("status_code") == "ERROR" else None
    )
    if error:
        fields["status"] = "error"
        fields["metadata"] = {**fields.get("metadata", {}), "error": str(error)[:500]}
    if "gen_ai.conversation.id" in attributes:
        fields.setdefault("session_id", str(attributes["gen_ai.conversation.id"]))
    return fields


FORMATS: dict[str, Callable[[Row], dict[str, Any]]] = {
    "canonical": from_canonical,
    "openai_chat": from_openai_chat,
    "anthropic_messages": from_anthropic_messages,
    "otel_genai": from_otel_genai,
}


def raw_for_quarantine(row: Row, limit: int = 2000) -> dict[str, Any]:
    """A bounded, storable copy of the row (PII masked, secrets redacted)."""
    from evaluators.heuristics.pii import mask_pii

    raw = {}
    for key, value in storable(dict(row), limit=limit).items():
        if not isinstance(value, str | int | float | bool | type(None)):
            value = json.dumps(value)[:limit]
        raw[key] = redact(mask_pii(value)) if isinstance(value, str) else value
    return raw


def record_fields(fields: dict[str, Any], row: Row) -> dict[str, Any]:
    """Fields plus the row's own id and timestamp (naive warehouse times are UTC)."""
    fields = {
        **fields,
        "id": None if row.get("id") is None else str(row["id"]),
        "ts": row.get("ts"),
    }
    if isinstance(fields["ts"], datetime) and fields["ts"].tzinfo is None:
        fields["ts"] = fields["ts"].replace(tzinfo=UTC)
    for name in EXACT_NUMBER_FIELDS:
        if isinstance(fields.get(name), Decimal):
            fields[name] = _exact_number(name, fields[name])
    return fields


#: Fields a warehouse may store as NUMERIC: taken as int (counts) or float (cost) when they hold
#: such a value; anything else (NaN, a fraction of a token) stays as read for the contract.
EXACT_NUMBER_FIELDS = ("input_tokens", "output_tokens", "latency_ms", "cost_usd")


def _exact_number(name: str, value: Decimal) -> Any:
    if not value.is_finite():
        return value
    if name == "cost_usd":
        return float(value)
    return int(value) if value == value.to_integral_value() else value


def reject(
    row: Row,
    reasons: list[str],
    stage: Literal["normalize", "validate"] = "normalize",
    expectations: list[str] | None = None,
) -> Reject:
    """The quarantine entry for a row: its id and time as read, why, and a masked raw copy."""
    ts = row.get("ts")
    raw = raw_for_quarantine(row)
    if row.get("id") is None:
        # Rows without an id are each their own entry, keyed by their content.
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:24]
        log_id = f"(no id):{digest}"
    else:
        log_id = storage_key(row["id"])
    return Reject(
        log_id=log_id,
        log_ts=ts if isinstance(ts, datetime) else None,
        reasons=[redact(storable_text(reason, 1000)) for reason in reasons],
        raw=raw,
        stage=stage,
        expectations=expectations or [],
    )


def reasons_of(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return validation_problems(exc, root="record")
    return [str(exc)]


def normalize_rows(rows: Iterable[Row], fmt: str) -> tuple[list[LogRecord], list[Reject]]:
    """Records that validate, and rejects with reasons; no row is lost either way."""
    to_fields = FORMATS[fmt]
    records: list[LogRecord] = []
    rejects: list[Reject] = []
    for row in rows:
        try:
            fields = record_fields(to_fields(row), row)
            if problems := row_problems(fields):
                rejects.append(reject(row, problems))
                continue
            records.append(LogRecord.model_validate(fields))
        except (PayloadError, ValidationError, TypeError, ValueError) as exc:
            rejects.append(reject(row, reasons_of(exc)))
    return records, rejects
