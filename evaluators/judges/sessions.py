"""LLM judges of whole conversations and agent runs: they read the unit's transcript (compact,
fenced like a log's fields, cut from the middle when over `transcript_chars`) and answer like
any judge, through the run's judge runtime (limits, retries, breaker, spend ledger)."""

import re
from functools import cached_property
from typing import ClassVar, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from evaluators.base import Cost, Score
from evaluators.heuristics.unit_checks import UnitEvaluator, unit_evaluator
from evaluators.judges.builtin import DEFAULT_JUDGE, RubricId, judge_version, score_of
from evaluators.judges.client import Endpoint, JudgeRoute, JudgeRuntime
from evaluators.judges.keys import KeyEnvName, check_endpoint
from evaluators.judges.prompting import USER_SPLIT, load_template, render
from evaluators.unit_records import Session, Trace, transcript_text


class UnitJudge(UnitEvaluator):
    """Base of the session and trace judges."""

    cost: ClassVar[Cost] = Cost.PAID
    template_name: ClassVar[str]
    default_threshold: ClassVar[float] = 0.5

    model: str = Field(default=DEFAULT_JUDGE, min_length=3, description="litellm model string.")
    api_base: str | None = None
    api_key_env: KeyEnvName | None = None
    pass_threshold: float | None = Field(default=None, ge=0, le=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_output_tokens: int = Field(default=400, ge=32, le=4000)
    transcript_chars: int = Field(
        default=12_000, ge=1000, le=100_000,
        description="Longer transcripts lose their middle (marked) to fit the judge's budget.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _key_goes_only_to_trusted_hosts(self) -> Self:
        check_endpoint(self.api_base, self.api_key_env)
        return self

    @property
    def threshold(self) -> float:
        return self.default_threshold if self.pass_threshold is None else self.pass_threshold

    def template(self) -> str:
        return load_template(self.template_name)

    @cached_property
    def evaluator_version(self) -> str:
        return judge_version(self.version, {
            "template": self.template(), "model": self.model,
            "threshold": self.threshold, "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens, "transcript_chars": self.transcript_chars,
        })  # fmt: skip

    @cached_property
    def route(self) -> JudgeRoute:
        return JudgeRoute(
            primary=Endpoint(
                model=self.model, api_base=self.api_base, api_key_env=self.api_key_env
            ),
            temperature=self.temperature,
            max_output_tokens=self.max_output_tokens,
            structured_output="auto",
        )

    def messages(self, unit: Session | Trace) -> list[dict[str, str]]:
        text = transcript_text(unit, self.transcript_chars)
        return render(self.template(), {"transcript": text}, self.score_name)

    def check(self, unit: Session | Trace) -> Score:
        return Score.error("a judge needs the run's judge runtime (use `judge`)")

    async def judge(self, unit: Session | Trace, runtime: JudgeRuntime) -> Score:
        if isinstance(unit, Trace) and not unit.llm_calls:
            return Score.skipped("no LLM call in this trace")
        return score_of(await runtime.judge(self.route, self.messages(unit)), self.threshold)


class SessionJudge(UnitJudge):
    unit = "session"


class TraceJudge(UnitJudge):
    unit = "trace"


@unit_evaluator
class ConversationResolved(SessionJudge):
    """LLM judge: was the user's problem resolved by the end of the conversation?"""

    name = "conversation_resolved"
    template_name = "conversation_resolved"


@unit_evaluator
class UserFrustration(SessionJudge):
    """LLM judge: did the user stay calm (no rephrasing in vain, complaints, giving up)?"""

    name = "user_frustration"
    template_name = "user_frustration"


@unit_evaluator
class AgentGoalCompleted(TraceJudge):
    """LLM judge: did the agent run achieve what it was asked (its final answer, its steps)?"""

    name = "agent_goal_completed"
    template_name = "agent_goal_completed"


@unit_evaluator
class ToolUseCorrect(TraceJudge):
    """LLM judge: did the agent pick the right tools, with sensible arguments, and use results?"""

    name = "tool_use_correct"
    template_name = "tool_use_correct"


SESSION_RUBRIC_PREAMBLE = (
    "You grade one whole conversation between a user and an AI assistant against the team's "
    "own rubric, given in the next message together with the transcript. Apply the rubric "
    "literally; score 1 when the conversation fully meets it and 0 when it clearly fails."
)


@unit_evaluator
class SessionRubric(SessionJudge):
    """LLM judge of a whole conversation with your own rubric (scores named session_rubric:<id>).

    The template uses {transcript}: the conversation, turn by turn, fenced."""

    name = "session_rubric"
    template_name = "session_rubric"  # unused: the rubric's template is the job's own text
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    id: RubricId = Field(description="Names this rubric's scores: evaluator = session_rubric:<id>.")
    template_text: str = Field(
        alias="template", min_length=20,
        description="The rubric, with {transcript} where the conversation goes.",
    )  # fmt: skip

    @field_validator("template_text")
    @classmethod
    def _reads_the_transcript(cls, value: str) -> str:
        if "{transcript}" not in value:
            raise ValueError("template must use {transcript} (where the conversation goes)")
        # A placeholder-like name other than {transcript} is a typo or a probe: nothing else is
        # filled in (JSON braces in an example stay as they are).
        stray = set(re.findall(r"\{([A-Za-z_][\w.]*)\}", value)) - {"transcript"}
        if stray:
            raise ValueError(
                f"template may only use {{transcript}}, not {', '.join(sorted(stray))}"
            )
        return value

    @property
    def score_name(self) -> str:
        return f"session_rubric:{self.id}"

    def template(self) -> str:
        return SESSION_RUBRIC_PREAMBLE + USER_SPLIT + self.template_text
