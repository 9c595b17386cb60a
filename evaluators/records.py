"""The canonical log record every evaluator sees, whatever shape the warehouse stores."""

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Status = Literal["ok", "error"]
Feedback = Literal["positive", "negative", "neutral"]
#: What one span of an agent run is; a log without one is an LLM call.
StepKind = Literal["llm", "tool", "retrieval", "agent", "other"]

#: Columns that identify a segment; copied onto every score so reports can slice by them.
SEGMENT_FIELDS: tuple[str, ...] = (
    "model",
    "provider",
    "prompt_slug",
    "topic",
    "customer_id",
    "environment",
)


class LogRecord(BaseModel):
    """One LLM call as logged in production, in canonical form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    ts: AwareDatetime
    prompt: str
    response: str | None = None
    context: list[str] = Field(default_factory=list, description="Retrieved passages, if any.")
    model: str | None = None
    provider: str | None = None
    prompt_slug: str | None = None
    topic: str | None = None
    customer_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    trace_id: str | None = Field(default=None, max_length=200)
    span_id: str | None = Field(default=None, max_length=200)
    parent_span_id: str | None = Field(default=None, max_length=200)
    step_kind: StepKind | None = Field(
        default=None, description="llm, tool, retrieval, agent or other; unset is an LLM call."
    )
    environment: str | None = None
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    latency_ms: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    status: Status = "ok"
    feedback: Feedback | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_llm_call(self) -> bool:
        """Log evaluators score LLM calls; a trace's other steps are for trace evaluators."""
        return self.step_kind in (None, "llm")

    def segment(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in SEGMENT_FIELDS}


def canonical_fields() -> tuple[str, ...]:
    return tuple(LogRecord.model_fields)
