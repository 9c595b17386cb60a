"""Sessions and traces assembled from logs and OpenTelemetry GenAI spans, and the units that
cannot be evaluated, each with its reason."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from evaluators.records import LogRecord
from evaluators.unit_records import transcript_text
from tasks.sessions.assemble import UnitReject, assemble_sessions, assemble_traces_of
from tasks.warehouse.normalize import normalize_rows

T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)


def record(log_id: str, session: str | None, minute: int, customer: str = "c1") -> LogRecord:
    return LogRecord(id=log_id, ts=T0 + timedelta(minutes=minute), prompt=f"q {log_id}",
                     response="a", session_id=session, customer_id=customer)  # fmt: skip


def test_turns_keep_a_stable_order_and_a_session_mixing_customers_is_refused() -> None:
    sessions, rejects = assemble_sessions([
        record("b", "s1", 5), record("a", "s1", 5), record("c", "s1", 1),
        record("x", "s2", 0, "c1"), record("y", "s2", 1, "c2"), record("solo", None, 3),
    ])  # fmt: skip
    [s1] = sessions
    assert [t.id for t in s1.turns] == ["c", "a", "b"]  # by time, then id
    assert rejects == [UnitReject(kind="session", unit_id="s2", reasons=[
        "the session mixes customers (c1, c2): turns of different customers never belong to "
        "one conversation"])]  # fmt: skip


def span(
    trace: str, span_id: str, parent: str | None, second: int, **attributes: Any
) -> dict[str, Any]:
    """A span row as an exporter writes it, read through the source's column mapping."""
    return {"id": span_id, "trace_id": trace, "span_id": span_id, "parent_span_id": parent,
            "ts": T0 + timedelta(seconds=second), "attributes": json.dumps(attributes)}  # fmt: skip


def said(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


def test_otel_genai_spans_become_a_trace_of_llm_tool_and_agent_steps() -> None:
    spans = [
        span("t1", "a", None, 0, **{"gen_ai.operation.name": "invoke_agent",
                                    "gen_ai.agent.name": "refunds",
                                    "gen_ai.input.messages": said("Refund order 42")}),
        span("t1", "b", "a", 1, **{
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.input.messages": said("Refund order 42"),
            "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30}),
        span("t1", "c", "a", 2, **{
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
            "gen_ai.tool.call.arguments": '{"order_id": 42}', "error.type": "TimeoutError"}),
        # Its parent never came: a root of its own, the trace "incomplete".
        span("t1", "d", "gone", 3, **{"gen_ai.operation.name": "chat", "gen_ai.prompt": "hi"}),
        span("t2", "x", "y", 0, **{"gen_ai.operation.name": "chat", "gen_ai.prompt": "a"}),
        span("t2", "y", "x", 1, **{"gen_ai.operation.name": "chat", "gen_ai.prompt": "b"}),
    ]  # fmt: skip
    records, bad = normalize_rows(spans, "otel_genai")
    assert bad == []  # tool and agent spans are steps, not broken LLM calls
    assert [r.is_llm_call for r in records] == [False, True, False, True, True, True]
    traces, rejects = assemble_traces_of(records)
    [t1] = traces
    assert [(s.step_id, s.kind, s.name) for s in t1.steps] == [
        ("a", "agent", "refunds"), ("b", "llm", "gpt-4o-mini"), ("c", "tool", "lookup_order"),
        ("d", "llm", None)]  # fmt: skip
    assert t1.incomplete and [s.step_id for s in t1.roots] == ["a", "d"]
    tool = t1.steps[2]
    assert (tool.input, tool.error) == ('{"order_id": 42}', "TimeoutError")
    assert t1.steps[1].tokens == 150 and "Refund order 42" in (t1.steps[1].input or "")
    assert transcript_text(t1).splitlines() == [
        "[agent refunds] in: Refund order 42",
        "  [llm gpt-4o-mini] in: Refund order 42",
        '  [tool lookup_order] in: {"order_id": 42} | ERROR: TimeoutError',
        "[llm] in: hi",
    ]
    assert rejects == [UnitReject(kind="trace", unit_id="t2",
                                  reasons=["parent ids form a cycle: x → y → x"])]  # fmt: skip
    _, too_long = assemble_traces_of(records[:3], max_steps=2)
    assert too_long[0].reasons == ["3 steps, over sessions.max_steps (2)"]


def chat_row(log_id: str, second: int, messages: list[dict[str, Any]],
             answer: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """An `openai_chat` log row of one agent run (`trace_id` mapped to a warehouse column)."""
    return {"id": log_id, "ts": T0 + timedelta(seconds=second), "trace_id": "run-7",
            "request": json.dumps({"model": "gpt-4o-mini", "messages": messages}),
            "response": json.dumps({"model": "gpt-4o-mini", "choices": [{"message": answer}]})}  # fmt: skip


def test_openai_chat_payloads_with_tool_calls_become_one_trace_each_call_once() -> None:
    asked = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "lookup_order", "arguments": '{"order": 42}'}}]}  # fmt: skip
    user = {"role": "user", "content": "Where is order 42?"}
    rows = [
        chat_row("r1", 0, [user], asked),
        # The next call carries the whole history: the tool call again, with its result.
        chat_row("r2", 5, [user, asked, {"role": "tool", "tool_call_id": "call_1",
                                         "content": '{"status": "shipped"}'}],
                 {"role": "assistant", "content": "Order 42 has shipped."}),
    ]  # fmt: skip
    records, bad = normalize_rows(rows, "openai_chat")
    assert bad == [] and records[0].response == '[calls lookup_order({"order": 42})]'
    [trace], rejects = assemble_traces_of(records)
    assert rejects == [] and not trace.incomplete
    assert [(s.kind, s.name, s.output) for s in trace.steps] == [
        ("llm", "gpt-4o-mini", '[calls lookup_order({"order": 42})]'),
        ("tool", "lookup_order", '{"status": "shipped"}'),  # once, with the result it got
        ("llm", "gpt-4o-mini", "Order 42 has shipped."),
    ]
