"""Threshold rules that fire on real drops, not on noise, and the alert state behind them.

A rule says "alert when <metric> <op> <value>". With `mode: ci` (the default) a breach needs the
whole confidence interval past the threshold, so 12 samples cannot page anyone by chance:
- rates (pass_rate, error_rate): a Wilson score interval on the weighted rate, with Kish's
  effective sample size (sum w)^2 / sum w^2 standing in for n when inclusion weights differ;
- means and percentiles: a weighted bootstrap (resampling with probability proportional to the
  inclusion weight, 1,000 resamples, seeded so a rerun decides the same way).
`mode: raw` compares the point estimate, for those who want the plain comparison.
"""

from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel

from tasks.config import AGREEMENT_METRICS, AlertsConfig, ThresholdRule
from tasks.stats.bootstrap import bootstrap
from tasks.stats.intervals import weighted_rate
from tasks.store.sql import query


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
def agreement_measurement(
    conn: sa.Connection, deployment: str, rule: ThresholdRule, confidence: float, now: datetime
) -> Measurement:
    """Judge drift: the judge's newest version against the human labels of logs it judged
    within the rule's `label_window` (kappa, or accuracy as `judge_accuracy`)."""
    from tasks.labels.measure import as_pair, label_pairs
    from tasks.stats.agreement import agreement

    base = {"evaluator": rule.evaluator, "metric": rule.metric, "segment": ""}
    since = now - rule.label_window
    by_version = label_pairs(conn, deployment, rule.evaluator)
    recent = {k: [r for r in rows if r.judged_at >= since] for k, rows in by_version.items()}
    recent = {k: rows for k, rows in recent.items() if rows}
    if not recent:
        return Measurement(**base, n=0, value=None, low=None, high=None)
    newest = max(recent, key=lambda k: max(r.judged_at for r in recent[k]))
    rows = recent[newest]
    found = agreement([as_pair(r) for r in rows], rule.evaluator, newest[2], min_labels=2,
                      confidence=confidence)  # fmt: skip
    estimate = found.kappa if rule.metric == "kappa" else found.accuracy
    return Measurement(**base, n=len(rows), value=estimate.value, low=estimate.low,
                       high=estimate.high)  # fmt: skip


def verdicts(
    conn: sa.Connection,
    run_id: str,
    alerts: AlertsConfig,
    deployment: str | None = None,
    now: datetime | None = None,
) -> list[Verdict]:
    found = []
    for rule in alerts.rules:
        confidence = rule.confidence or alerts.confidence
        if rule.metric in AGREEMENT_METRICS:
            if deployment is not None:
                m = agreement_measurement(conn, deployment, rule, confidence, now or utcnow())
                found.append(judge(rule, m, alerts))
            continue
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


def utcnow() -> datetime:
    return datetime.now(UTC)
