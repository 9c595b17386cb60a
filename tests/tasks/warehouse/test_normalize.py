"""Every payload format maps onto the canonical record; broken payloads become rejects."""

import json
from datetime import UTC, datetime
from typing import Any

from tasks.warehouse.normalize import normalize_rows

TS = datetime(2026, 5, 1, 12, tzinfo=UTC)


def one(row: dict[str, Any], fmt: str) -> Any:
    records, rejects = normalize_rows([row], fmt)
    assert not rejects, rejects
    return records[0]


def rejected(row: dict[str, Any], fmt: str) -> list[str]:
    records, rejects = normalize_rows([row], fmt)
    assert not records and len(rejects) == 1
    assert rejects[0].log_id == str(row.get("id"))
    return rejects[0].reasons


def test_canonical_row_passes_through_with_json_columns_parsed() -> None:
    rec = one(
        {"id": 7, "ts": TS, "prompt": "p", "response": "r", "context": '["a", "b"]',
         "metadata": {"k": 1}, "input_tokens": 3, "feedback": "negative"},
        "canonical",
    )  # fmt: skip
    assert rec.id == "7" and rec.context == ["a", "b"] and rec.metadata == {"k": 1}
    assert rec.feedback == "negative"


def test_canonical_naive_timestamps_are_read_as_utc() -> None:
    rec = one({"id": 1, "ts": datetime(2026, 5, 1, 12), "prompt": "p"}, "canonical")
    assert rec.ts == TS


def test_canonical_malformed_rows_are_rejected_with_reasons() -> None:
    assert any("prompt" in r for r in rejected({"id": 1, "ts": TS, "prompt": None}, "canonical"))
    negative = rejected({"id": 1, "ts": TS, "prompt": "p", "output_tokens": -3}, "canonical")
    assert any("output_tokens" in r for r in negative)
    bad_feedback = rejected({"id": 1, "ts": TS, "prompt": "p", "feedback": "meh"}, "canonical")
    assert any("feedback" in r for r in bad_feedback)


def test_rejects_keep_a_masked_copy_of_the_raw_row() -> None:
    _, rejects = normalize_rows(
        [{"id": 1, "ts": TS, "prompt": None, "response": "mail me at bob@example.com"}], "canonical"
    )
    assert rejects[0].raw["response"] == "mail me at [EMAIL]"
    assert rejects[0].raw["ts"] == TS.isoformat()


OPENAI_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is the return window?"}]},
        {"role": "tool", "tool_call_id": "1", "content": "Returns within 30 days."},
    ],
}
OPENAI_RESPONSE = {
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"message": {"role": "assistant", "content": "30 days."}}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 3},
}


def test_openai_chat_payload() -> None:
    rec = one(
        {"id": "a", "ts": TS, "request": json.dumps(OPENAI_REQUEST), "response": OPENAI_RESPONSE,
         "customer_id": "acme"},
        "openai_chat",
    )  # fmt: skip
    assert rec.prompt == "What is the return window?"
    assert rec.response == "30 days."
    assert rec.context == ["Returns within 30 days."]
    assert rec.model == "gpt-4o-mini-2024-07-18" and rec.provider == "openai"
    assert (rec.input_tokens, rec.output_tokens) == (42, 3)
    assert rec.customer_id == "acme" and rec.metadata["system"] == "Be brief."


def test_openai_chat_error_response_is_a_provider_error_not_a_reject() -> None:
    rec = one(
        {"id": "a", "ts": TS, "request": OPENAI_REQUEST, "response": {"error": {"code": 500}}},
        "openai_chat",
    )
    assert rec.status == "error" and rec.response is None


def test_openai_chat_broken_payloads_are_rejected() -> None:
    no_json = rejected({"id": "a", "ts": TS, "request": "{oops", "response": "{}"}, "openai_chat")
    assert "request is not valid JSON" in no_json[0]
    truncated = rejected(
        {"id": "a", "ts": TS, "request": OPENAI_REQUEST, "response": {"id": "x"}}, "openai_chat"
    )
    assert "choices" in truncated[0]
    no_messages = rejected({"id": "a", "ts": TS, "request": {}, "response": {}}, "openai_chat")
    assert "messages" in no_messages[0]


def test_anthropic_messages_payload() -> None:
    request = {
        "model": "claude-3-5-haiku",
        "system": "Be kind.",
        "messages": [{"role": "user", "content": "Hi there"}],
    }
    response = {
        "type": "message",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Hello!"}, {"type": "tool_use", "id": "t"}],
        "usage": {"input_tokens": 9, "output_tokens": 2},
    }
    rec = one({"id": 1, "ts": TS, "request": request, "response": response}, "anthropic_messages")
    assert (rec.prompt, rec.response) == ("Hi there", "Hello!")
    assert rec.provider == "anthropic" and rec.model == "claude-3-5-haiku-20241022"
    assert (rec.input_tokens, rec.output_tokens) == (9, 2)
    assert rec.metadata["system"] == "Be kind."
    error = {"type": "error", "error": {"type": "overloaded_error"}}
    assert (
        one({"id": 2, "ts": TS, "request": request, "response": error}, "anthropic_messages").status
        == "error"
    )
    assert rejected(
        {"id": 3, "ts": TS, "request": request, "response": {"x": 1}}, "anthropic_messages"
    )


def test_otel_genai_current_conventions() -> None:
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 4,
        "gen_ai.input.messages": json.dumps(
            [{"role": "system", "parts": [{"type": "text", "content": "sys"}]},
             {"role": "user", "parts": [{"type": "text", "content": "Hello?"}]}]
        ),
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Hi"}]}],
        "gen_ai.conversation.id": "c1",
    }  # fmt: skip
    rec = one({"id": "s1", "ts": TS, "attributes": attributes}, "otel_genai")
    assert (rec.prompt, rec.response, rec.model, rec.provider) == (
        "Hello?",
        "Hi",
        "gpt-4o",
        "openai",
    )
    assert (rec.input_tokens, rec.output_tokens, rec.session_id) == (11, 4, "c1")


def test_otel_genai_legacy_and_flattened_attributes() -> None:
    legacy = {"gen_ai.system": "anthropic", "gen_ai.prompt": "Q", "gen_ai.completion": "A"}
    rec = one({"id": "s", "ts": TS, "attributes": legacy}, "otel_genai")
    assert (rec.prompt, rec.response, rec.provider) == ("Q", "A", "anthropic")
    flat = {"gen_ai.prompt.0.content": "first", "gen_ai.prompt.1.content": "second",
            "gen_ai.completion.0.content": "answer"}  # fmt: skip
    rec = one({"id": "s", "ts": TS, "attributes": flat}, "otel_genai")
    assert (rec.prompt, rec.response) == ("first\n\nsecond", "answer")


def test_otel_genai_errors_and_missing_content() -> None:
    failed = {"gen_ai.prompt": "Q", "error.type": "timeout"}
    assert one({"id": "s", "ts": TS, "attributes": failed}, "otel_genai").status == "error"
    reasons = rejected(
        {"id": "s", "ts": TS, "attributes": {"gen_ai.request.model": "m"}}, "otel_genai"
    )
    assert "no prompt content" in reasons[0]
    assert rejected({"id": "s", "ts": TS, "attributes": None}, "otel_genai") == [
        "attributes is null"
    ]


def test_one_bad_row_does_not_stop_the_others() -> None:
    rows = [{"id": i, "ts": TS, "prompt": None if i == 2 else "p"} for i in range(5)]
    records, rejects = normalize_rows(rows, "canonical")
    assert [r.id for r in records] == ["0", "1", "3", "4"]
    assert [r.log_id for r in rejects] == ["2"]
