"""Sessions and traces assembled from normalized logs and spans, with the reasons a unit cannot
be evaluated: a session mixing customers, parent ids that form a cycle, a trace over the step
limit. A span whose parent never arrives stands as a root of its own and marks its trace
incomplete; turns with the same timestamp keep a stable order (by id).

Traces are assembled from normalized records (`assemble_traces_of`): a canonical row with
trace, span and parent ids and an OTel GenAI span (normalize reads its operation as the step
kind) alike."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel

from evaluators.records import LogRecord
from evaluators.unit_records import Session, Step, Trace, UnitKind

DEFAULT_MAX_STEPS = 500


class UnitReject(BaseModel):
    kind: UnitKind
    unit_id: str
    reasons: list[str]


def assemble_sessions(records: Iterable[LogRecord]) -> tuple[list[Session], list[UnitReject]]:
    """The sessions of these logs (logs without a session id are not part of one)."""
    groups: dict[str, list[LogRecord]] = {}
    for record in records:
        if record.session_id:
            groups.setdefault(record.session_id, []).append(record)
    sessions: list[Session] = []
    rejects: list[UnitReject] = []
    for session_id in sorted(groups):
        turns = sorted(groups[session_id], key=lambda r: (r.ts, r.id))
        customers = sorted({t.customer_id for t in turns if t.customer_id is not None})
        if len(customers) > 1:
            rejects.append(UnitReject(kind="session", unit_id=session_id, reasons=[
                f"the session mixes customers ({', '.join(customers[:5])}): turns of different "
                "customers never belong to one conversation"]))  # fmt: skip
            continue
        sessions.append(Session(session_id=session_id, turns=turns))
    return sessions, rejects


def _cycle(steps: dict[str, Step]) -> list[str] | None:
    """The first cycle in parent ids, as the ids around it, or None."""
    for start in sorted(steps):
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = start
        while current is not None and current in steps:
            if current in on_path:
                return [*path[path.index(current) :], current]
            path.append(current)
            on_path.add(current)
            current = steps[current].parent_id
    return None


def assemble_trace(
    trace_id: str, steps: list[Step], max_steps: int = DEFAULT_MAX_STEPS
) -> Trace | UnitReject:
    if len(steps) > max_steps:
        return UnitReject(kind="trace", unit_id=trace_id, reasons=[
            f"{len(steps):,} steps, over sessions.max_steps ({max_steps:,})"])  # fmt: skip
    by_id = {s.step_id: s for s in steps}
    if len(by_id) < len(steps):
        return UnitReject(kind="trace", unit_id=trace_id, reasons=["repeated span ids"])
    cycle = _cycle(by_id)
    if cycle is not None:
        return UnitReject(kind="trace", unit_id=trace_id, reasons=[
            f"parent ids form a cycle: {' → '.join(cycle)}"])  # fmt: skip
    orphans = any(s.parent_id is not None and s.parent_id not in by_id for s in steps)
    ordered = sorted(steps, key=lambda s: (s.started_at or datetime.min, s.step_id))
    return Trace(trace_id=trace_id, steps=ordered, incomplete=orphans)


def _assembled(
    steps: Iterable[tuple[str, Step]], max_steps: int
) -> tuple[list[Trace], list[UnitReject]]:
    grouped: dict[str, list[Step]] = {}
    calls: dict[tuple[str, str], int] = {}  # (trace, tool-call step) -> its index in the trace
    for trace_id, step in steps:
        trace_steps = grouped.setdefault(trace_id, [])
        if step.step_id.startswith(TOOL_CALL_PREFIX):
            # An agent loop's history repeats each earlier tool call: one step, with its result.
            at = calls.get((trace_id, step.step_id))
            if at is not None:
                if step.output and not trace_steps[at].output:
                    trace_steps[at] = step
                continue
            calls[(trace_id, step.step_id)] = len(trace_steps)
        trace_steps.append(step)
    traces: list[Trace] = []
    rejects: list[UnitReject] = []
    for trace_id in sorted(grouped):
        found = assemble_trace(trace_id, grouped[trace_id], max_steps)
        (rejects if isinstance(found, UnitReject) else traces).append(found)  # type: ignore[arg-type]
    return traces, rejects


def step_from_record(record: LogRecord) -> Step:
    """One normalized log as a step of its trace: an LLM call unless it says otherwise."""
    kind = record.step_kind or "llm"
    name = record.metadata.get("step_name") if kind != "llm" else record.model
    error = record.metadata.get("error") or ("error" if record.status == "error" else None)
    tokens = (record.input_tokens or 0) + (record.output_tokens or 0)
    ended = (
        record.ts + timedelta(milliseconds=record.latency_ms)
        if record.latency_ms is not None
        else None
    )
    return Step(
        step_id=record.span_id or record.id, parent_id=record.parent_span_id or None, kind=kind,
        name=None if name is None else str(name)[:200], input=record.prompt or None,
        output=record.response, error=None if error is None else str(error)[:500],
        started_at=record.ts, ended_at=ended, model=record.model, cost_usd=record.cost_usd,
        tokens=tokens or None,
    )  # fmt: skip


TOOL_CALL_PREFIX = "tool-call:"


def steps_of_record(record: LogRecord) -> list[Step]:
    """The record's own step, and the tool calls its chat history carries (an `openai_chat`
    payload's `tool_calls` with their results), each a step under the record's parent: those
    it answered just before it, those it asks for (no result yet) just after."""
    own = step_from_record(record)
    calls = record.metadata.get("tool_calls")
    if not isinstance(calls, list):
        return [own]
    tools = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        shift = timedelta(microseconds=1 if call.get("pending") else -1)
        tools.append(Step(
            step_id=f"{TOOL_CALL_PREFIX}{call.get('id')}", parent_id=own.parent_id, kind="tool",
            name=call.get("name"), input=call.get("arguments"), output=call.get("result"),
            started_at=own.started_at + shift if own.started_at else None,
        ))  # fmt: skip
    return [*tools, own]


def assemble_traces_of(
    records: Iterable[LogRecord], max_steps: int = DEFAULT_MAX_STEPS
) -> tuple[list[Trace], list[UnitReject]]:
    """The traces of these normalized logs (logs without a trace id are not part of one)."""
    steps = ((r.trace_id, step) for r in records if r.trace_id for step in steps_of_record(r))
    return _assembled(steps, max_steps)
