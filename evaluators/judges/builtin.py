"""The LLM-as-judge evaluators. Each renders its versioned template, asks the run's judge runtime
for a verdict, and turns the result into a score (or an error/skipped row, never a guess).
"""

import hashlib
import json
import re
from functools import cached_property
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.judges.client import (
    Endpoint,
    FallbackEndpoint,
    JudgeResult,
    JudgeRoute,
    JudgeRuntime,
    StructuredOutput,
)
from evaluators.judges.keys import KeyEnvName, check_endpoint
from evaluators.judges.prompting import (
    USER_SPLIT,
    load_template,
    log_values,
    render,
    template_variables,
)
from evaluators.records import LogRecord
from evaluators.registry import registered

DEFAULT_JUDGE = "local/heuristic"
#: Label of a score the budget did not allow: not written, counted as the unscored remainder.
UNSCORED_BUDGET = "unscored:budget"


class JudgeEvaluator(Evaluator):
    """Base of the judges: which model answers, how strictly, and the pass threshold."""

    cost: ClassVar[Cost] = Cost.PAID
    template_name: ClassVar[str]
    needs_response: ClassVar[bool] = True
    default_threshold: ClassVar[float] = 0.5

    model: str = Field(
        default=DEFAULT_JUDGE,
        min_length=3,
        description="litellm model string (openai/gpt-4o-mini, anthropic/..., gemini/..., "
        "hosted_vllm/..., ollama/...); local/heuristic is the offline stand-in.",
    )
    fallbacks: list[FallbackEndpoint] = Field(
        default_factory=list, description="Models tried in order when the primary keeps failing."
    )
    api_base: str | None = Field(default=None, description="Base URL (self-hosted, Azure, proxy).")
    api_key_env: KeyEnvName | None = Field(
        default=None,
        description="Env var holding the API key (a provider's, or ASSAY_JUDGE_KEY_*).",
    )
    pass_threshold: float | None = Field(
        default=None, ge=0, le=1, description="passed = score >= this (default per judge)."
    )
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_output_tokens: int = Field(default=400, ge=32, le=4000)
    structured_output: StructuredOutput = Field(
        default="auto", description="Send a JSON schema as response_format (auto: if supported)."
    )

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
        """Class version plus a digest of everything that can change a verdict."""
        return judge_version(self.version, {
            "template": self.template(), "model": self.model, "threshold": self.threshold,
            "temperature": self.temperature, "max_output_tokens": self.max_output_tokens,
        })  # fmt: skip

    @cached_property
    def route(self) -> JudgeRoute:
        return JudgeRoute(
            primary=Endpoint(
                model=self.model, api_base=self.api_base, api_key_env=self.api_key_env
            ),
            fallbacks=tuple(self.fallbacks),
            temperature=self.temperature,
            max_output_tokens=self.max_output_tokens,
            structured_output=self.structured_output,
        )

    def messages(self, record: LogRecord) -> list[dict[str, str]]:
        return render(self.template(), log_values(record), criterion=self.score_name)

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        if not isinstance(ctx.judges, JudgeRuntime):
            return Score.error("no judge runtime in this context (paid evaluators need one)")
        if self.needs_response and not record.response:
            return Score.skipped("no response to judge")
        try:
            messages = self.messages(record)
        except KeyError as missing:
            return Score.skipped(f"the log has no {missing.args[0]} for this judge")
        return self.score_of(await ctx.judges.judge(self.route, messages))

    def score_of(self, result: JudgeResult) -> Score:
        return score_of(result, self.threshold)


def judge_version(version: str, material: dict[str, object]) -> str:
    """A judge's `evaluator_version`: its class version plus a digest of everything that can
    change a verdict (template, model, threshold, sampling settings)."""
    digest = hashlib.blake2b(json.dumps(material, sort_keys=True).encode(), digest_size=4)
    return f"{version}-{digest.hexdigest()}"


#: The middle of the verdict scale: what a judge that is not told the threshold passes at.
MIDPOINT = 0.5


def inconsistent(score: float, passed: bool, threshold: float) -> bool:
    """A verdict whose `passed` contradicts its score on both the pass threshold and the
    scale's midpoint (0.99 and failed, 0.1 and passed). Between the two, the judge's own
    `passed` and the threshold may differ honestly, and the threshold decides."""
    if passed:
        return score < min(threshold, MIDPOINT)
    return score >= max(threshold, MIDPOINT)


def score_of(result: JudgeResult, threshold: float) -> Score:
    """A judge's answer as a score: passed is `score >= threshold`, and a verdict that
    contradicts itself (`inconsistent`) is an error row; a refused budget, a skipped or failed
    call are not verdicts (nothing is guessed)."""
    spent = {
        "judge_model": result.model,
        "cost_usd": result.cost_usd,
        "tokens": (result.input_tokens + result.output_tokens) or None,
        "latency_ms": result.latency_ms,
    }
    if result.budget_refused:
        return Score(status="skipped", label=UNSCORED_BUDGET, reason=result.reason)
    if result.status != "ok" or result.verdict is None:
        reason = result.reason or "judge gave no verdict"
        if result.status == "skipped":
            return Score(status="skipped", reason=reason, **spent)
        return Score(status="error", reason=reason, **spent)
    verdict = result.verdict
    if inconsistent(verdict.score, verdict.passed, threshold):
        # The judge contradicts itself (0.99 yet failed): which half to believe is a guess.
        return Score(
            status="error",
            reason=f"inconsistent verdict: score {verdict.score:g} with passed "
            f"{str(verdict.passed).lower()} (pass threshold {threshold:g}): {verdict.reason}"[
                :2000
            ],
            **spent,
        )
    reason = verdict.reason
    if result.fallback_used:
        reason = f"[answered by fallback {result.model}] {reason}"
    return Score(
        score=verdict.score,
        passed=verdict.score >= threshold,
        label=verdict.label,
        reason=reason,
        **spent,
    )


@registered
class Faithfulness(JudgeEvaluator):
    """LLM judge: is the response grounded in the retrieved context (RAG)?"""

    name = "faithfulness"
    version = "1"
    template_name = "faithfulness"
    default_threshold = 0.7


@registered
class AnswerRelevance(JudgeEvaluator):
    """LLM judge: does the response address what the user asked?"""

    name = "answer_relevance"
    version = "1"
    template_name = "answer_relevance"


@registered
class ContextRelevance(JudgeEvaluator):
    """LLM judge: did retrieval return passages that can answer the prompt?"""

    name = "context_relevance"
    version = "1"
    template_name = "context_relevance"
    needs_response = False


@registered
class Correctness(JudgeEvaluator):
    """LLM judge: does the response agree with the reference answer (metadata.reference)?"""

    name = "correctness"
    version = "1"
    template_name = "correctness"
    default_threshold = 0.7


@registered
class Toxicity(JudgeEvaluator):
    """LLM judge: is the response free of harmful content (1 = safe)?"""

    name = "toxicity"
    version = "1"
    template_name = "toxicity"
    default_threshold = 0.7


@registered
class Coherence(JudgeEvaluator):
    """LLM judge: is the response clear, consistent and complete?"""

    name = "coherence"
    version = "1"
    template_name = "coherence"


@registered
class Hallucination(JudgeEvaluator):
    """LLM judge without context: does the response state likely fabricated facts (1 = none)?"""

    name = "hallucination"
    version = "1"
    template_name = "hallucination"
    default_threshold = 0.7


RUBRIC_PREAMBLE = (
    "You grade one logged exchange of an AI assistant against the team's own rubric, given in "
    "the next message together with the log. Apply the rubric literally; score 1 when the log "
    "fully meets it and 0 when it clearly fails."
)
_RUBRIC_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


def check_rubric_id(value: str) -> str:
    """A rubric's id names its scores (`rubric:<id>`): short, lowercase, plain."""
    if not _RUBRIC_ID.match(value):
        raise ValueError("id must be lowercase letters, digits, '-' or '_' (max 41)")
    return value


RubricId = Annotated[str, AfterValidator(check_rubric_id)]


@registered
class Rubric(JudgeEvaluator):
    """LLM judge with your own rubric template and pass threshold (scores named rubric:<id>).

    The template uses {prompt}, {response}, {context}, {reference} and {metadata.KEY}.
    """

    name = "rubric"
    version = "1"
    template_name = "rubric"  # unused: the rubric's template is the job's own text
    needs_response = False

    id: RubricId = Field(description="Names this rubric's scores: evaluator = rubric:<id>.")
    template_text: str = Field(
        alias="template",
        min_length=20,
        description="The rubric, with variables where the log's fields go.",
    )

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("template_text")
    @classmethod
    def _uses_the_log(cls, value: str) -> str:
        if not template_variables(value):
            raise ValueError(
                "template must use at least one of {prompt}, {response}, {context}, "
                "{reference}, {metadata.KEY}"
            )
        return value

    @property
    def score_name(self) -> str:
        return f"rubric:{self.id}"

    def template(self) -> str:
        return RUBRIC_PREAMBLE + USER_SPLIT + self.template_text

    def messages(self, record: LogRecord) -> list[dict[str, str]]:
        return render(self.template(), log_values(record), criterion=self.score_name)
