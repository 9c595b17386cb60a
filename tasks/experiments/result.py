"""What a check found: the experiment, its evaluators, its gate, and the baseline comparison."""

from typing import Literal

from pydantic import BaseModel

from tasks.experiments.gate import EvaluatorTotals, GateResult, RepeatSpread
from tasks.stats.paired import EvaluatorComparison

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
    #: The rules that could not decide, each with why (the gate did not pass on them).
    unmeasured: list[str] = []
    allow_unmeasured: bool = False  # --allow-unmeasured: such rules were let through
    cost_usd: float  # judges and target calls this experiment paid for
    run_id: str
    repeats: int = 1
    spreads: list[RepeatSpread] = []  # with --repeat: the verdicts' spread across repeats
    target_calls: int = 0  # calls made to the target by this check (not answered by the cache)
    target_cached: int = 0  # answers taken from the content cache
    target_cost_usd: float = 0.0
    #: Items whose target call raised or timed out: an error each, never a score.
    target_errors: dict[str, str] = {}
    baseline: str | None = None  # the experiment compared with, when one was asked for
    baseline_note: str | None = None  # e.g. the datasets differ: only shared items compared
    comparisons: list[EvaluatorComparison] = []
    #: evaluator -> its worst failing items (id, score, reason), for CI reports
    worst: dict[str, list[tuple[str, float | None, str | None]]] = {}

    @property
    def outcome(self) -> Literal["passed", "failed", "not_measured"]:
        if self.passed:
            return "passed"
        failed = any(g.state == "failed" for g in self.gate) or any(
            c.significant_drop for c in self.comparisons
        )
        return "failed" if failed else "not_measured"
