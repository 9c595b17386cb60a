"""The gate of a check: the config's rules (its `gate:` block, else its alert rules) decided
over the experiment's scores with the same interval statistics as production alerts."""

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from tasks.alerts.rules import judge, measure
from tasks.config import EvalJob, ThresholdRule
from tasks.store.sql import query

GateState = Literal["passed", "failed", "too_few", "not_run"]
STATES: dict[str, GateState] = {"breach": "failed", "healthy": "passed", "too_few": "too_few"}


class GateResult(BaseModel):
    rule: ThresholdRule
    state: GateState
    n: int = 0
    value: float | None = None
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        r = self.rule
        return f"{r.evaluator} {r.metric} {r.op} {r.value:g} ({r.mode})"


def gate_rules(job: EvalJob) -> list[ThresholdRule]:
    # A dataset is gated as a whole: the production rules' segments do not apply to it.
    return [rule.model_copy(update={"by": None}) for rule in (job.gate or job.alerts.rules)]


def decide(
    conn: sa.Connection, deployment: str, job: EvalJob, evaluated: set[str]
) -> list[GateResult]:
    rows = conn.execute(
        sa.text(query("experiments", "experiment_scores")), {"deployment": deployment}
    ).all()
    by_evaluator: dict[str, list[Any]] = {}
    for row in rows:
        by_evaluator.setdefault(row.evaluator, []).append(row)
    results = []
    for rule in gate_rules(job):
        if rule.evaluator not in evaluated:
            results.append(GateResult(rule=rule, state="not_run"))
            continue
        confidence = rule.confidence or job.alerts.confidence
        m = measure(rule, by_evaluator.get(rule.evaluator, []), confidence, "")
        verdict = judge(rule, m, job.alerts)
        state: GateState = STATES[verdict.state]
        results.append(
            GateResult(rule=rule, state=state, n=m.n, value=m.value, low=m.low, high=m.high)
        )
    return results


class EvaluatorTotals(BaseModel):
    evaluator: str
    ok: int = 0
    passed: int = 0
    skipped: int = 0
    errors: int = 0
    cost_usd: float = 0.0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ok if self.ok else None


def totals(conn: sa.Connection, deployment: str) -> list[EvaluatorTotals]:
    found: dict[str, EvaluatorTotals] = {}
    for row in conn.execute(
        sa.text(query("experiments", "experiment_scores")), {"deployment": deployment}
    ):
        t = found.setdefault(row.evaluator, EvaluatorTotals(evaluator=row.evaluator))
        if row.status == "ok":
            t.ok += 1
            t.passed += bool(row.passed)
        elif row.status == "skipped":
            t.skipped += 1
        else:
            t.errors += 1
        t.cost_usd += row.cost_usd or 0.0
    return [found[k] for k in sorted(found)]
