"""What a dataset check is asked to do: one model, so that every caller names every option (a
swapped timeout and concurrency fail validation instead of passing unnoticed) and the Prefect
UI renders the deployed check's parameters as one form."""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.config import EvalJob
from tasks.experiments.result import Tier
from tasks.experiments.targets import TargetOutput


class CheckRequest(BaseModel):
    """A check of a target on every current item of a golden dataset, gated by the job's rules.

    The target is exactly one of: a file of outputs (`outputs`, recorded as `target`), a Python
    callable (`target_callable`, `module:function`) or a prompt file (`target_prompt`,
    `prompt:FILE.yaml`)."""

    model_config = ConfigDict(extra="forbid")

    job: EvalJob = Field(description="The deployment's job: its evaluators and gate rules.")
    dataset: str = Field(min_length=1, description="The golden dataset to check on.")
    outputs: list[TargetOutput] | None = Field(
        default=None, description="The target's outputs, one per item (a file's lines)."
    )
    target: str = Field(default="", description="How a file of outputs is recorded.")
    target_callable: str | None = Field(default=None, description="module:function to call.")
    target_prompt: str | None = Field(default=None, description="prompt:FILE.yaml to call.")
    tier: Tier = Field(default="all", description="`free`: only the evaluators that cost nothing.")
    name: str | None = Field(default=None, description="The experiment's name.")
    target_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Per target call.")
    target_concurrency: int = Field(default=8, ge=1, le=256, description="Target calls at once.")
    baseline: str | None = Field(
        default=None, description="An experiment id, or latest-on-main, to compare with."
    )
    repeats: int = Field(default=1, ge=1, le=100, description="Answers per item.")
    cache: bool = Field(default=True, description="Reuse the target's earlier answers.")
    fail_on_gate: bool = Field(default=False, description="Fail the run when the gate fails.")
    allow_unmeasured: bool = Field(
        default=False, description="Let a rule that could not decide pass."
    )

    @model_validator(mode="after")
    def one_target(self) -> Self:
        given = [self.outputs is not None, self.target_callable is not None,
                 self.target_prompt is not None]  # fmt: skip
        if sum(given) > 1:
            raise ValueError("give one target: outputs, target_callable or target_prompt")
        if self.repeats > 1 and self.outputs is not None:
            raise ValueError("repeats needs a target to call, not a file of outputs")
        return self
