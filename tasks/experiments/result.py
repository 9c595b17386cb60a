"""What a check found: the experiment, its evaluators, its gate, and the baseline comparison."""

from typing import Literal

from pydantic import BaseModel

from tasks.experiments.compare import EvaluatorComparison
from tasks.experiments.gate import EvaluatorTotals, GateResult

Tier = Literal["free", "all"]


class CheckResult(BaseModel):
    experiment_id: str
    name: str
    dataset: str
    dataset_digest: str
    target: str
    tier: Tier
    items: int
    evaluators: list[EvaluatorTotals]
    gate: list[GateResult]
    passed: bool
    cost_usd: float
    run_id: str
    #: Items whose target call raised or timed out: an error each, never a score.
    target_errors: dict[str, str] = {}
    baseline: str | None = None  # the experiment compared with, when one was asked for
    baseline_note: str | None = None  # e.g. the datasets differ: only shared items compared
    comparisons: list[EvaluatorComparison] = []
    #: evaluator -> its worst failing items (id, score, reason), for CI reports
    worst: dict[str, list[tuple[str, float | None, str | None]]] = {}
