"""LLM judges of whole conversations: they read the session's transcript (compact, fenced like a
log's fields, cut from the middle when over `transcript_chars`) and answer like any judge,
through the run's judge runtime (limits, retries, breaker, spend ledger)."""

from functools import cached_property
from typing import ClassVar

from pydantic import Field

from evaluators.base import Cost, Score
from evaluators.heuristics.units import UnitEvaluator, unit_evaluator
from evaluators.judges.builtin import DEFAULT_JUDGE, judge_version, score_of
from evaluators.judges.client import Endpoint, JudgeRoute, JudgeRuntime
from evaluators.judges.keys import KeyEnvName
from evaluators.judges.prompting import load_template, render
from evaluators.units import Session, Trace, transcript_text


class SessionJudge(UnitEvaluator):
    """Base of the session judges."""

    unit = "session"
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

    @property
    def threshold(self) -> float:
        return self.default_threshold if self.pass_threshold is None else self.pass_threshold

    @cached_property
    def evaluator_version(self) -> str:
        return judge_version(self.version, {
            "template": load_template(self.template_name), "model": self.model,
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

    def messages(self, session: Session) -> list[dict[str, str]]:
        text = transcript_text(session, self.transcript_chars)
        return render(load_template(self.template_name), {"transcript": text}, self.name)

    def check(self, unit: Session | Trace) -> Score:
        return Score.error("a judge needs the run's judge runtime (use `judge`)")

    async def judge(self, session: Session, runtime: JudgeRuntime) -> Score:
        return score_of(await runtime.judge(self.route, self.messages(session)), self.threshold)


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
