"""Threshold rules that fire on real drops, not on noise, and the alert state behind them.

A rule says "alert when <metric> <op> <value>". With `mode: ci` (the default) a breach needs the
whole confidence interval past the threshold, so 12 samples cannot page anyone by chance:
- rates (pass_rate, error_rate): a Wilson score interval on the weighted rate, with Kish's
  effective sample size (sum w)^2 / sum w^2 standing in for n when inclusion weights differ;
- means and percentiles: a weighted bootstrap (resampling with probability proportional to the
  inclusion weight, 1,000 resamples, seeded so a rerun decides the same way).
`mode: raw` compares the point estimate, for those who want the plain comparison.
"""

import json
import math
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel

from tasks.config import AlertsConfig, ThresholdRule
from tasks.store.sql import query

BOOTSTRAP_RESAMPLES = 1000
PERCENTILES = {"p5": 5, "p10": 10, "p25": 25, "p50": 50, "p75": 75, "p90": 90, "p95": 95}


class Measurement(BaseModel):
    """One metric over one segment of one run, with its interval."""

    evaluator: str
    metric: str
    segment: str  # '' for the whole deployment, else 'by=value'
    n: int
    value: float | None
    low: float | None
    high: float | None


class Verdict(BaseModel):
    measurement: Measurement
    rule: ThresholdRule
    state: Literal["breach", "healthy", "too_few"]


class Transition(BaseModel):
    """What the alert state machine decided for one verdict, and whether to tell anyone."""

    kind: Literal["breach", "reminder", "recovery"]
    verdict: Verdict
    open_for: timedelta | None = None


# -- statistics ------------------------------------------------------------------------------------
def wilson(rate: float, n: float, confidence: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def effective_n(weights: np.ndarray) -> float:
    total = float(weights.sum())
    squares = float((weights * weights).sum())
    return total * total / squares if squares else 0.0


def weighted_rate(
    hits: np.ndarray, weights: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    rate = float((hits * weights).sum() / weights.sum())
    low, high = wilson(rate, effective_n(weights), confidence)
    return rate, low, high


def _statistic(metric: str, values: np.ndarray, weights: np.ndarray) -> float:
    if metric == "mean":
        return float(np.average(values, weights=weights))
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    index = int(np.searchsorted(cumulative, PERCENTILES[metric] / 100))
    return float(values[order][min(index, len(values) - 1)])


def bootstrap(
    metric: str, values: np.ndarray, weights: np.ndarray, confidence: float, seed: int = 7
) -> tuple[float, float, float]:
    point = _statistic(metric, values, weights)
    rng = np.random.default_rng(seed)
    probabilities = weights / weights.sum()
    draws = rng.choice(len(values), size=(BOOTSTRAP_RESAMPLES, len(values)), p=probabilities)
    ones = np.ones(len(values))
    stats = np.array([_statistic(metric, values[d], ones) for d in draws])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return point, float(low), float(high)


def measure(rule: ThresholdRule, rows: list[Any], confidence: float, segment: str) -> Measurement:
    """`rows` carry status, score, passed and weight of one evaluator's scores in one segment."""
    base = {"evaluator": rule.evaluator, "metric": rule.metric, "segment": segment}
    if rule.metric == "error_rate":
        judged = [r for r in rows if r.status in ("ok", "error")]
        if not judged:
            return Measurement(**base, n=0, value=None, low=None, high=None)
        hits = np.array([r.status == "error" for r in judged], dtype=float)
        weights = np.array([r.weight for r in judged], dtype=float)
        value, low, high = weighted_rate(hits, weights, confidence)
        return Measurement(**base, n=len(judged), value=value, low=low, high=high)
    ok = [r for r in rows if r.status == "ok" and r.score is not None]
    if not ok:
        return Measurement(**base, n=0, value=None, low=None, high=None)
    weights = np.array([r.weight for r in ok], dtype=float)
    if rule.metric == "pass_rate":
        hits = np.array([bool(r.passed) for r in ok], dtype=float)
        value, low, high = weighted_rate(hits, weights, confidence)
    else:
        scores = np.array([r.score for r in ok], dtype=float)
        value, low, high = bootstrap(rule.metric, scores, weights, confidence)
    return Measurement(**base, n=len(ok), value=value, low=low, high=high)


def _past(value: float, op: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[op]


def judge(rule: ThresholdRule, m: Measurement, alerts: AlertsConfig) -> Verdict:
    """breach: the interval (or, raw, the value) is entirely past the threshold."""
    min_samples = rule.min_samples or alerts.min_samples
    if m.value is None or m.n < min_samples:
        return Verdict(measurement=m, rule=rule, state="too_few")
    if rule.mode == "raw":
        breached = _past(m.value, rule.op, rule.value)
    else:
        # The side of the interval nearest the threshold must be past it too.
        edge = m.high if rule.op in ("<", "<=") else m.low
        assert edge is not None
        breached = _past(edge, rule.op, rule.value)
    return Verdict(measurement=m, rule=rule, state="breach" if breached else "healthy")


def segment_sql(rule: ThresholdRule) -> str:
    """The SQL expression of a rule's segment; `by` is one of a fixed set of column names (a
    Literal validated at load), never free text."""
    return f"coalesce({rule.by}, '(none)')" if rule.by else "''"


# -- reading a run's scores ------------------------------------------------------------------------
def verdicts(conn: sa.Connection, run_id: str, alerts: AlertsConfig) -> list[Verdict]:
    found = []
    for rule in alerts.rules:
        confidence = rule.confidence or alerts.confidence
        rows = conn.execute(
            sa.text(query("alerts", "run_scores").replace("{segment}", segment_sql(rule))),
            {"run_id": run_id, "evaluator": rule.evaluator},
        ).all()
        by_segment: dict[str, list[Any]] = {}
        for row in rows:
            by_segment.setdefault(row.segment, []).append(row)
        for segment, segment_rows in sorted(by_segment.items()):
            label = f"{rule.by}={segment}" if rule.by else ""
            found.append(judge(rule, measure(rule, segment_rows, confidence, label), alerts))
    return found


# -- alert state -----------------------------------------------------------------------------------
def transition(
    conn: sa.Connection,
    deployment: str,
    run_id: str,
    verdict: Verdict,
    cooldown: timedelta,
    now: datetime,
) -> Transition | None:
    """Open, remind, or resolve the alert this verdict speaks to; None when nobody is told."""
    m = verdict.measurement
    key = {
        "deployment": deployment,
        "evaluator": m.evaluator,
        "metric": m.metric,
        "segment": m.segment,
    }
    current = conn.execute(sa.text(query("alerts", "get_alert")), key).one_or_none()
    is_open = current is not None and current.status == "open"
    fields = {
        **key,
        "rule": json.dumps(verdict.rule.model_dump()),
        "value": m.value,
        "low": m.low,
        "high": m.high,
        "n": m.n,
        "now": now,
        "run_id": run_id,
    }
    if verdict.state == "breach" and not is_open:
        conn.execute(sa.text(query("alerts", "open_alert")), fields)
        return Transition(kind="breach", verdict=verdict)
    if verdict.state == "breach" and current is not None:
        conn.execute(sa.text(query("alerts", "update_alert")), fields)
        if now - current.last_notified_at >= cooldown:
            conn.execute(sa.text(query("alerts", "mark_notified")), fields)
            return Transition(kind="reminder", verdict=verdict, open_for=now - current.opened_at)
        return None
    if verdict.state == "healthy" and is_open and current is not None:
        conn.execute(sa.text(query("alerts", "resolve_alert")), fields)
        return Transition(kind="recovery", verdict=verdict, open_for=now - current.opened_at)
    return None


def open_alerts(conn: sa.Connection, deployment: str) -> list[Any]:
    return list(
        conn.execute(sa.text(query("alerts", "open_alerts")), {"deployment": deployment}).all()
    )
