"""The evaluator contract: validated configuration plus one async `evaluate`."""

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluators.records import LogRecord

ScoreStatus = Literal["ok", "error", "skipped"]


class Cost(StrEnum):
    FREE = "free"
    PAID = "paid"


class Score(BaseModel):
    """What an evaluator says about one record.

    `status="skipped"` means the evaluator does not apply (say, no latency was logged);
    `status="error"` means it could not decide. Neither carries a score: nothing is guessed.
    """

    model_config = ConfigDict(frozen=True)

    status: ScoreStatus = "ok"
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    passed: bool | None = None
    label: str | None = None
    reason: str | None = None
    # Set by paid (LLM judge) evaluators; free evaluators cost nothing and call no model.
    judge_model: str | None = None
    cost_usd: float | None = Field(default=0.0, description="None: the price is unknown")
    tokens: int | None = None
    latency_ms: int | None = None

    @classmethod
    def verdict(cls, passed: bool, reason: str | None = None, label: str | None = None) -> "Score":
        return cls(score=1.0 if passed else 0.0, passed=passed, reason=reason, label=label)

    @classmethod
    def skipped(cls, reason: str) -> "Score":
        return cls(status="skipped", reason=reason)

    @classmethod
    def error(cls, reason: str) -> "Score":
        return cls(status="error", reason=reason)


class EvalContext(BaseModel):
    """Run-level facts an evaluator may use; never per-record state.

    `judges` is the run's `JudgeRuntime` (limits, retries, breakers) for paid evaluators.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    deployment: str
    run_id: str
    judges: Any = None


class Scorer(BaseModel):
    """What every evaluator is, of a log or of a whole unit: a name, a version and a cost, and
    the names its scores are stored under. Subclasses declare their params as fields.

    Bump `version` whenever a change would give a different score for the same input: scores
    are keyed by (unit, evaluator, version), so a new version is scored afresh.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    version: ClassVar[str]
    cost: ClassVar[Cost] = Cost.FREE

    @property
    def score_name(self) -> str:
        """The `evaluator` column of this instance's scores (a rubric adds its own id)."""
        return self.name

    @property
    def evaluator_version(self) -> str:
        """The `evaluator_version` column; judges derive it from template, params and model."""
        return self.version

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or cls.name).strip().splitlines()[0]


class Evaluator(Scorer):
    """Base class of log evaluators: `evaluate` scores one log."""

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        raise NotImplementedError
