"""The gate of a check: the config's rules (its `gate:` block, else its alert rules) decided
over the experiment's scores with the same interval statistics as production alerts."""

from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel

from tasks.alerts.rules import Measurement, judge, measure
from tasks.config import EvalJob, ThresholdRule
from tasks.experiments.answers import item_of
from tasks.stats.bootstrap import bootstrap
from tasks.store.sql import query

#: `not_measured`: the rule could not decide (too few scores, or a judge that mostly failed);
#: a gate never passes on that unless the user asks (`--allow-unmeasured`). `too_few` is what
#: experiments recorded before this state existed.
GateState = Literal["passed", "failed", "not_measured", "not_run", "too_few"]
STATES: dict[str, GateState] = {"breach": "failed", "healthy": "passed", "too_few": "not_measured"}


class GateResult(BaseModel):
    rule: ThresholdRule
    state: GateState
    n: int = 0
    value: float | None = None
    low: float | None = None
    high: float | None = None
    why: str | None = None  # for a rule that could not decide: what was missing

    def describe(self) -> str:
        r = self.rule
        return f"{r.evaluator} {r.metric} {r.op} {r.value:g} ({r.mode})"


def gate_rules(job: EvalJob) -> list[ThresholdRule]:
    # A dataset is gated as a whole: the production rules' segments do not apply to it.
    return [rule.model_copy(update={"by": None}) for rule in (job.gate or job.alerts.rules)]


def measure_repeated(
    rule: ThresholdRule, rows: list[Any], item_ids: set[str], confidence: float
) -> Measurement:
    """With `--repeat N` an item's N verdicts are not N independent observations: each item
    contributes its mean over its repeats, and the interval is a bootstrap over items, so it
    spans both the items and the run-to-run noise of the target."""
    base = {"evaluator": rule.evaluator, "metric": rule.metric, "segment": ""}
    per_item: dict[str, list[Any]] = {}
    for row in rows:
        per_item.setdefault(item_of(row.log_id, item_ids), []).append(row)
    values = []
    for item_rows in per_item.values():
        if rule.metric == "error_rate":
            judged = [r for r in item_rows if r.status in ("ok", "error")]
            if judged:
                values.append(sum(r.status == "error" for r in judged) / len(judged))
            continue
        ok = [r for r in item_rows if r.status == "ok" and r.score is not None]
        if ok:
            hits = [bool(r.passed) if rule.metric == "pass_rate" else r.score for r in ok]
            values.append(float(np.mean(hits)))
    if not values:
        return Measurement(**base, n=0, value=None, low=None, high=None)
    metric = "mean" if rule.metric in ("pass_rate", "error_rate") else rule.metric
    array = np.array(values, dtype=float)
    value, low, high = bootstrap(metric, array, np.ones(len(array)), confidence)
    return Measurement(**base, n=len(values), value=value, low=low, high=high)


def experiment_scores(conn: sa.Connection, deployment: str) -> dict[str, list[Any]]:
    """An experiment's scores per evaluator."""
    by_evaluator: dict[str, list[Any]] = {}
    for row in conn.execute(
        sa.text(query("experiments", "experiment_scores")), {"deployment": deployment}
    ):
        by_evaluator.setdefault(row.evaluator, []).append(row)
    return by_evaluator


def decide(
    conn: sa.Connection,
    deployment: str,
    job: EvalJob,
    evaluated: set[str],
    item_ids: set[str] | None = None,
) -> list[GateResult]:
    """The gate; with `item_ids` (a `--repeat` experiment) decided over items, not calls."""
    by_evaluator = experiment_scores(conn, deployment)
    results = []
    for rule in gate_rules(job):
        if rule.evaluator not in evaluated:
            skipped = f"{rule.evaluator} did not run in this check"
            results.append(GateResult(rule=rule, state="not_run", why=skipped))
            continue
        confidence = rule.confidence or job.alerts.confidence
        rows = by_evaluator.get(rule.evaluator, [])
        m = (
            measure(rule, rows, confidence, "")
            if item_ids is None
            else measure_repeated(rule, rows, item_ids, confidence)
        )
        verdict = judge(rule, m, job.alerts)
        state: GateState = STATES[verdict.state]
        why = unmeasured_reason(rule, m.n, rows, job)
        if why is not None:
            state = "not_measured"
        results.append(GateResult(rule=rule, state=state, n=m.n, value=m.value, low=m.low,
                                  high=m.high, why=why))  # fmt: skip
    return results


def unmeasured_reason(rule: ThresholdRule, n: int, rows: list[Any], job: EvalJob) -> str | None:
    """Why `rule` could not decide, or None: fewer scores than `min_samples`, or an evaluator
    whose judge failed on more calls than `max_judge_error_rate` allows (its few verdicts say
    more about the judge than about the target)."""
    judged = [r for r in rows if r.status in ("ok", "error")]
    errors = sum(r.status == "error" for r in judged)
    limit = job.alerts.max_judge_error_rate
    if rule.metric != "error_rate" and judged and errors / len(judged) > limit:
        return (
            f"{rule.evaluator} errored on {errors:,} of {len(judged):,} calls "
            f"({errors / len(judged):.0%}), above max_judge_error_rate {limit:.0%}"
        )
    needed = rule.min_samples or job.alerts.min_samples
    if n < needed:
        return f"{n:,} measured score(s), the rule needs {needed:,} (min_samples)"
    return None


def gate_outcome(
    gate: list[GateResult], dropped: bool, allow_unmeasured: bool = False
) -> tuple[bool, list[GateResult]]:
    """(passed, the rules that could not decide). A failed rule or a significant drop fails;
    otherwise a rule that was not measured keeps the gate from passing, unless allowed."""
    unmeasured = [g for g in gate if g.state in ("not_measured", "too_few")]
    failed = dropped or any(g.state == "failed" for g in gate)
    return (not failed and (allow_unmeasured or not unmeasured)), unmeasured


class EvaluatorTotals(BaseModel):
    evaluator: str
    ok: int = 0
    passed: int = 0
    skipped: int = 0
    errors: int = 0
    cached: int = 0  # verdicts reused from another experiment's judgement (no call, no cost)
    cost_usd: float = 0.0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ok if self.ok else None


def totals(conn: sa.Connection, deployment: str) -> list[EvaluatorTotals]:
    found: dict[str, EvaluatorTotals] = {}
    for evaluator, rows in experiment_scores(conn, deployment).items():
        t = found.setdefault(evaluator, EvaluatorTotals(evaluator=evaluator))
        for row in rows:
            if row.status == "ok":
                t.ok += 1
                t.passed += bool(row.passed)
            elif row.status == "skipped":
                t.skipped += 1
            else:
                t.errors += 1
            t.cached += bool(row.cached)
            t.cost_usd += row.cost_usd or 0.0
    return [found[k] for k in sorted(found)]


class RepeatSpread(BaseModel):
    """How much an evaluator's verdicts moved across `--repeat` runs of the target."""

    evaluator: str
    repeats: int
    pass_rates: list[float | None]  # per repeat, in order
    spread: float | None  # the largest minus the smallest of them
    items: int
    unstable_items: int  # items whose verdict was not the same in every repeat


def spreads(
    conn: sa.Connection, deployment: str, item_ids: set[str], repeats: int
) -> list[RepeatSpread]:
    found = []
    for evaluator, rows in sorted(experiment_scores(conn, deployment).items()):
        per_repeat: list[list[bool]] = [[] for _ in range(repeats)]
        per_item: dict[str, set[bool]] = {}
        for row in rows:
            if row.status != "ok" or row.passed is None:
                continue
            item = item_of(row.log_id, item_ids)
            repeat = 1 if row.log_id == item else int(row.log_id.rsplit("#", 1)[1])
            if 1 <= repeat <= repeats:
                per_repeat[repeat - 1].append(bool(row.passed))
            per_item.setdefault(item, set()).add(bool(row.passed))
        rates = [sum(r) / len(r) if r else None for r in per_repeat]
        known = [r for r in rates if r is not None]
        found.append(RepeatSpread(
            evaluator=evaluator, repeats=repeats, pass_rates=rates,
            spread=max(known) - min(known) if known else None, items=len(per_item),
            unstable_items=sum(len(v) > 1 for v in per_item.values()),
        ))  # fmt: skip
    return found
